"""OpenTelemetry traces: a span for every message a service handles, a child of the span
that sent it, so one intake is one trace across intake, rules and matching.

FastStream's telemetry middleware opens a ``<subject> process`` span for each command and
event, reading its parent from the message's ``traceparent`` header. Whatever a handler
publishes then carries that span's context in its envelope and header (``current``), so
the next service's span hangs under it. With tracing off, messages still carry a trace
context derived from their ids (``contracts.envelope.trace_parent``): one trace id per
command, for anyone reading the events.

Spans go to an OTLP endpoint when ``ALONGSIDE_TRACING=otlp``, configured by the standard
``OTEL_EXPORTER_OTLP_*`` variables; tests and the demo pass an in-memory exporter.
"""

from __future__ import annotations

from collections.abc import Iterable

from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from runtime.settings import Settings


def current() -> str | None:
    """The W3C ``traceparent`` of the span this task is in, if one is being traced: the
    parent a message published now should name."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def exporter_of(settings: Settings) -> SpanExporter | None:
    """Where the settings send spans, if anywhere."""
    if settings.tracing == "off":
        return None
    # Imported here: only a deployment that exports spans loads the OTLP client.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def provider(service: str, exporter: SpanExporter) -> TracerProvider:
    """Spans of one service, named ``alongside-<service>``, exported in batches off the
    message path."""
    spans = TracerProvider(resource=Resource.create({SERVICE_NAME: f"alongside-{service}"}))
    spans.add_span_processor(BatchSpanProcessor(exporter))
    return spans


def middleware(spans: TracerProvider) -> NatsTelemetryMiddleware:
    # Spans only: message counts and durations are Prometheus's (runtime.metrics).
    return NatsTelemetryMiddleware(tracer_provider=spans, meter_provider=NoOpMeterProvider())


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None  # an ended span always has one
    return f"{span.context.span_id:016x}"


def parent_id(span: ReadableSpan) -> str | None:
    return f"{span.parent.span_id:016x}" if span.parent is not None else None


def lineage(spans: Iterable[ReadableSpan], traceparent: str) -> list[ReadableSpan]:
    """The span a message's ``traceparent`` names, then its parent, and so on, as far as
    ``spans`` hold them: how a message came about, newest first."""
    by_id = {span_id(span): span for span in spans}
    found, at = [], by_id.get(traceparent.split("-")[2])
    while at is not None:
        found.append(at)
        parent = parent_id(at)
        at = by_id.get(parent) if parent is not None else None
    return found


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get(SERVICE_NAME, ""))
