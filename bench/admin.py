"""Admin benchmark: the run list, run page and overview with 1,000,000 runs in PostgreSQL.

    .venv-3.11/bin/python bench/admin.py [--runs 1000000]

Starts a throwaway PostgreSQL on 127.0.0.1:55472, loads the runs with one INSERT ...
SELECT (UUIDv7 ids spread over 30 days, 1% failed, a few pending/running/waiting, four
jobs, two queues), then renders each admin page through Django's test client as a
logged-in superuser and prints the median time and the number of SQL queries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.postgres import ThrowawayPostgres  # noqa: E402

LOAD_SQL = """
INSERT INTO django_durable_run (
    id, job_name, queue_name, status, priority, args, kwargs, errors, attempt, recoveries,
    idempotency_key, run_after, created_at, started_at, finished_at, cancel_requested, progress
)
SELECT
    (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
        || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
    'bench.job' || (i % 4), CASE WHEN i % 10 = 0 THEN 'reports' ELSE 'default' END,
    status, 0, '[1, 2]', '{{}}',
    CASE WHEN status = 'failed' THEN '[{{"attempt": 1, "type": "builtins.ValueError",
        "message": "boom", "traceback": "Traceback ..."}}]'::jsonb ELSE '[]'::jsonb END,
    1, 0, 'order-' || i, ts, ts,
    CASE WHEN status IN ('pending', 'waiting') THEN NULL ELSE ts END,
    CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN ts + interval '40 ms' END,
    false,
    CASE WHEN status = 'running' THEN '{{"done": 3, "total": 10, "message": ""}}'::jsonb END
FROM (
    SELECT i, md5(i::text) AS h,
        now() - ({runs} - i) * (interval '30 days' / {runs}) AS ts,
        CASE WHEN i > {runs} - 20 THEN 'running'
             WHEN i > {runs} - 100 THEN 'pending'
             WHEN i % 997 = 0 THEN 'waiting'
             WHEN i % 100 = 7 THEN 'failed'
             ELSE 'completed' END AS status
    FROM generate_series(1, {runs}) AS i
) AS generated
"""


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench-only",
        USE_TZ=True,
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="tests.urls",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "django_durable",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="static/",
        DATABASES={"default": __import__("environ").Env().db_url("DATABASE_URL")},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def timed(client, url: str, repeat: int) -> tuple[float, int]:
    """Median milliseconds over ``repeat`` renders, and the queries of one render."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert client.get(url).status_code == 200, url  # warm caches and the plan
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return statistics.median(times), len(queries.captured_queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--port", type=int, default=55472)
    options = parser.parse_args()

    server = ThrowawayPostgres(port=options.port)
    server.start()
    try:
        setup_django(server.url)
        from django.contrib.auth.models import User
        from django.test import Client

        from django_durable.models import Run, Step

        started = time.perf_counter()
        server.psql(LOAD_SQL.format(runs=options.runs))
        server.psql("ANALYZE")
        print(f"loaded {options.runs:,} runs in {time.perf_counter() - started:.1f} s")
        newest = Run.objects.order_by("-id").first()
        assert newest is not None
        Step.objects.bulk_create(
            Step(run=newest, position=i, name=f"s{i}", status="completed") for i in range(10)
        )
        client = Client()
        client.force_login(User.objects.create_superuser("bench", password="bench"))
        base = "/admin/django_durable/run/"
        pages = [
            ("run list, unfiltered", base),
            ("run list, status=failed", f"{base}?status__exact=failed"),
            ("run list, job", f"{base}?job=bench.job2"),
            ("run list, queue", f"{base}?queue=reports"),
            ("run list, created last hour", f"{base}?created=1h"),
            (
                "run list, failed + job + 24h",
                f"{base}?status__exact=failed&job=bench.job3&created=24h",
            ),
            ("run list, page 100", f"{base}?p=100"),
            ("search, id prefix", f"{base}?q={newest.pk.hex[:16]}"),
            ("search, idempotency key", f"{base}?q=order-{options.runs // 2}"),
            ("run page (10 steps)", f"{base}{newest.pk}/change/"),
            ("overview", "/admin/django_durable/runoverview/"),
        ]
        print(f"\n{'page':<32} {'median ms':>10} {'queries':>8}")
        for label, url in pages:
            milliseconds, queries = timed(client, url, options.repeat)
            print(f"{label:<32} {milliseconds:>10.1f} {queries:>8}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
