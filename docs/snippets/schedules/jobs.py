# shop/jobs.py
from datetime import timedelta

from django_durable import job, schedule


# Every night at 02:30 in Paris. The night clocks go forward (last Sunday of March)
# has no 02:30, so no run; the night they go back (last Sunday of October) has two,
# and the report runs once, at the first.
@schedule("30 2 * * *", timezone="Europe/Paris", overlap="skip")
@job
def nightly_report(ctx):
    day = ctx.scheduled_at.date()  # the tick's time, not the moment the run started
    return ctx.step("render", lambda: f"report for {day}")


# Every hour; after an outage, each hour missed in the last 6 hours still runs, once.
# Two schedules of one job, with their own arguments.
@schedule("0 * * * *", name="sync eu", kwargs={"region": "eu"}, catchup=timedelta(hours=6))
@schedule("*/10 * * * * *", name="sync us", kwargs={"region": "us"})
@job
def sync_partner(ctx, region):
    return ctx.step("fetch", lambda: region)
