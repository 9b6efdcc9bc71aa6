"""The no-op jobs as django-tasks tasks."""

from django_tasks import task


@task()
def one_step() -> None:
    return None


@task()
def pickup(key: str) -> None:
    from bench.pickup import record

    record(key)
