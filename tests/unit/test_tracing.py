"""Where spans go, and the trace context a message sent inside a span names."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import TypeAdapter

from contracts.envelope import TraceParent
from runtime import tracing
from runtime.settings import Settings


def test_spans_go_over_otlp_only_when_the_settings_say_so() -> None:
    assert tracing.exporter_of(Settings(tracing="off")) is None
    assert isinstance(tracing.exporter_of(Settings(tracing="otlp")), OTLPSpanExporter)


def test_a_message_sent_inside_a_span_names_that_span_as_its_parent() -> None:
    assert tracing.current() is None  # nothing traced: the envelope derives its own
    spans = tracing.provider("tests", InMemorySpanExporter())
    with spans.get_tracer("tests").start_as_current_span("handling") as span:
        sent = tracing.current()
    context = span.get_span_context()
    assert sent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert TypeAdapter(TraceParent).validate_python(sent) == sent  # as envelopes require
