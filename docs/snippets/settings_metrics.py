# settings.py
import os

DURABLE = {
    # Prometheus sends it as "Authorization: Bearer <token>"; keep it out of the code.
    "METRICS_TOKEN": os.environ["DURABLE_METRICS_TOKEN"],
}
