"""OpenTelemetry: the enqueuer's trace goes on in the worker's process (run and step
spans); without opentelemetry installed nothing is traced and nothing breaks."""

import os
import subprocess
import sys

import pytest

from tests.workers import ROOT, WorkerProcess, process_env

otel = pytest.importorskip("tests.otel", reason="the otel extra and opentelemetry-sdk")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def spans_file(tmp_path_factory):
    """Where this process's spans go, and the worker's: one provider per process."""
    path = tmp_path_factory.mktemp("otel") / "spans.jsonl"
    provider = otel.export_to(path)
    yield path
    # The global provider cannot be unset: stop it exporting the rest of the session.
    provider.shutdown()


def test_a_run_continues_the_trace_it_was_enqueued_in_across_processes(spans_file, tmp_path):
    from opentelemetry import trace

    from tests.testapp import jobs

    with trace.get_tracer("tests").start_as_current_span("POST /orders") as request:
        handle = jobs.three_steps.enqueue()
    trace_id = request.get_span_context().trace_id
    worker = WorkerProcess(tmp_path / "w.log", "--burst", DURABLE_TEST_OTEL_FILE=str(spans_file))
    assert worker.wait() == 0, worker.output

    spans = [span for span in otel.spans(spans_file) if span["trace_id"] == trace_id]
    (producer,) = [span for span in spans if span["kind"] == "PRODUCER"]
    (consumer,) = [span for span in spans if span["kind"] == "CONSUMER"]
    steps = [span for span in spans if span["name"].startswith("step ")]
    assert producer["name"] == "send default"
    assert producer["parent_id"] == request.get_span_context().span_id
    assert producer["attributes"]["messaging.system"] == "django_durable"
    assert producer["attributes"]["messaging.message.id"] == str(handle.id)
    assert consumer["name"] == "process default"
    assert consumer["pid"] == worker.process.pid != os.getpid()
    assert consumer["parent_id"] == producer["span_id"]
    assert consumer["attributes"]["messaging.message.id"] == str(handle.id)
    assert consumer["attributes"]["durable.job"] == "tests.three_steps"
    assert consumer["attributes"]["durable.attempt"] == 1
    assert consumer["attributes"]["durable.outcome"] == "completed"
    assert [span["name"] for span in steps] == ["step step-1", "step step-2", "step step-3"]
    assert {span["parent_id"] for span in steps} == {consumer["span_id"]}
    assert [span["attributes"]["durable.step.position"] for span in steps] == [0, 1, 2]


def test_without_opentelemetry_nothing_is_traced_and_nothing_breaks():
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
import django
django.setup()
from django_durable import tracing
assert tracing.current_context() is None
with tracing.enqueue_span("shop.order", "default") as span:
    assert span is None
print("untraced")
"""
    env = process_env()
    env.pop("DURABLE_TEST_OTEL_FILE", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "untraced"
