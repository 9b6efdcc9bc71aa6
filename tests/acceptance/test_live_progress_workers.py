"""A real worker's long step shows its progress before it ends
(tests/integration/test_live_progress.py has the in-process cases)."""

import pytest

from django_durable import RunStatus
from django_durable.models import Run, Step
from tests.testapp import jobs
from tests.workers import WorkerProcess, wait_until


@pytest.mark.django_db(transaction=True)
def test_a_workers_long_step_shows_its_progress_before_it_ends(tmp_path):
    flag = tmp_path / "release"
    handle = jobs.ticks_until_released.enqueue(str(flag))
    worker = WorkerProcess(tmp_path / "worker.log", "--burst")
    try:

        def progress_done():
            return (Run.objects.get(pk=handle.id).progress or {}).get("done") or 0

        wait_until(lambda: progress_done() >= 1, what="progress from inside the step")
        first = progress_done()
        # Throttled, not frozen: a later value arrives while the step still runs.
        wait_until(lambda: progress_done() > first, what="a second progress write")
        run = Run.objects.get(pk=handle.id)
        assert run.status == RunStatus.RUNNING
        assert not Step.objects.filter(run_id=handle.id).exists()  # the step has not ended
        flag.touch()
        assert worker.wait() == 0, worker.output
    finally:
        flag.touch()
        if worker.process.poll() is None:
            worker.kill()
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.COMPLETED
    assert run.progress == {"done": run.output, "total": None, "message": f"tick {run.output}"}
