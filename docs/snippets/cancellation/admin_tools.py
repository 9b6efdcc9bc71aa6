# shop/admin_tools.py
from django_durable import RunHandle, cancel_run, fork_run, restart_run, retry_run


def cancel(run_id) -> RunHandle:
    # Pending and waiting runs end at once; a running one at its next operation.
    return cancel_run(run_id)


def resume(run_id) -> RunHandle:
    # A failed or cancelled run continues at its first unfinished operation.
    return retry_run(run_id)


def start_over(run_id) -> RunHandle:
    # A finished run runs again from its first step, as its next attempt.
    return restart_run(run_id)


def rerun_from_failure(run_id) -> RunHandle:
    # A new run that keeps the old one's work before its failure, with today's code.
    return fork_run(run_id)
