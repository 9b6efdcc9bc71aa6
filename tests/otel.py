"""OpenTelemetry's SDK for the trace tests: spans of every process of a test go to one
JSON-lines file (DURABLE_TEST_OTEL_FILE), so a test can read the worker's spans too."""

import json
import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class FileExporter(SpanExporter):
    def __init__(self, path):
        self.path = path

    def export(self, spans):
        with open(self.path, "a") as out:
            for span in spans:
                parent = span.parent.span_id if span.parent else None
                out.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "kind": span.kind.name,
                            "trace_id": span.context.trace_id,
                            "span_id": span.context.span_id,
                            "parent_id": parent,
                            "attributes": dict(span.attributes),
                            "status": span.status.status_code.name,
                            "pid": os.getpid(),
                        }
                    )
                    + "\n"
                )
        return SpanExportResult.SUCCESS


def export_to(path):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(path)))
    trace.set_tracer_provider(provider)
    return provider


def spans(path):
    if not os.path.exists(path):
        return []
    with open(path) as lines:
        return [json.loads(line) for line in lines]
