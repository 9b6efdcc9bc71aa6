# shop/jobs.py
from datetime import timedelta

from django_durable import job


# Heartbeat pings are worth nothing after a day, whatever DURABLE["RETENTION"] says.
@job(retention=timedelta(days=1))
def ping_partner(ctx, partner_id):
    ctx.step("ping", lambda: partner_id)
