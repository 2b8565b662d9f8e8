"""One trace from a command to every event it causes, across services, in the envelope and
in the NATS headers a CloudEvents or OpenTelemetry consumer reads."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from alongside.client import AlongsideClient
from contracts import subjects
from contracts.envelope import RawEnvelope, wrap
from contracts.replies import CommandAccepted
from runtime import bus, tracing
from runtime.clock import SYSTEM
from tests.conftest import Start
from tests.support import eligible, intake, supporter, wait_for


@pytest.mark.usefixtures("running")
async def test_a_submitted_intake_and_everything_it_causes_share_its_trace(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    for n in range(3):
        await supporter(client, org, f"s{n}", ["en"])
    await eligible(client, org, 3)
    command = intake("c1", ["en"])
    envelope = wrap(command, org=org, source="tests", time=SYSTEM())
    assert envelope.traceparent is not None
    trace = envelope.traceparent.split("-")[1]
    reply = await client.send_raw(
        org, "intake", "SubmitIntake", envelope.model_dump_json().encode()
    )
    assert isinstance(reply, CommandAccepted)
    await wait_for(client, org, "MatchProposed", 1)

    # Every event about the case, from intake, rules and matching, as stored with headers.
    sub = await nc.jetstream().subscribe(
        subjects.events(org),
        stream=subjects.org_events_stream(org),
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    seen: dict[str, tuple[RawEnvelope, dict[str, str]]] = {}
    while True:
        try:
            msg = await sub.next_msg(timeout=1)
        except TimeoutError:
            break
        event = RawEnvelope.model_validate_json(msg.data)
        if event.data.get("case_id") == "c1":
            seen[event.type] = (event, dict(msg.headers or {}))
    await sub.unsubscribe()

    assert {"IntakeReceived", "MatchingPolicyDecided", "ConsentDecided", "MatchProposed"} <= set(
        seen
    )
    for event, headers in seen.values():
        assert event.traceparent is not None
        assert event.traceparent.split("-")[1] == trace, event.type
        assert headers["traceparent"] == event.traceparent
        assert headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    spans = {event.traceparent.split("-")[2] for event, _ in seen.values() if event.traceparent}
    assert len(spans) == len(seen)  # each message its own span


@pytest.mark.nats
async def test_spans_of_one_intake_form_one_trace_from_submit_intake_to_match_proposed(
    start: Start, client: AlongsideClient, org: str
) -> None:
    exporter = InMemorySpanExporter()
    running = await start(span_exporter=exporter)
    for n in range(3):
        await supporter(client, org, f"s{n}", ["en"])
    await eligible(client, org, 3)
    command = wrap(intake("c1", ["en"]), org=org, source="tests", time=SYSTEM())
    assert command.traceparent is not None
    _, trace, sender, _ = command.traceparent.split("-")
    reply = await client.send_raw(
        org,
        "intake",
        "SubmitIntake",
        command.model_dump_json().encode(),
        headers=bus.headers_of(command),
    )
    assert isinstance(reply, CommandAccepted)
    [proposed] = await wait_for(client, org, "MatchProposed", 1)
    running.flush_spans()

    spans = {
        tracing.span_id(span): span
        for span in exporter.get_finished_spans()
        if span.context is not None and f"{span.context.trace_id:032x}" == trace
    }
    [root] = [
        s
        for s in spans.values()
        if s.name == f"{subjects.command(org, 'intake', 'SubmitIntake', subjects.OPERATOR)} process"
    ]
    assert root.parent is not None
    assert root.parent.is_remote
    assert tracing.parent_id(root) == sender  # the client's span, named in its header
    for span in spans.values():
        if span is not root:  # no broken link: every other span's parent was recorded too
            assert tracing.parent_id(span) in spans, span.name

    # From the span that proposed the match, back to the intake, through the rules' policy.
    assert proposed.traceparent is not None
    path = [
        (
            tracing.service_of(s),
            f"{subjects.command_type_of(s.name.removesuffix(' process'))} process",
        )
        for s in tracing.lineage(spans.values(), proposed.traceparent)
    ]
    assert path == [
        ("alongside-matching", "MatchingPolicyDecided process"),
        ("alongside-rules", "IntakeReceived process"),
        ("alongside-intake", "SubmitIntake process"),
    ]
    # The intake's event woke the one service that handles it (the others' consumers are not
    # sent it), in a span under the intake.
    woken = [s for s in spans.values() if s.name.endswith(".IntakeReceived process")]
    assert {tracing.service_of(s) for s in woken} == {"alongside-rules"}
    assert all(tracing.parent_id(s) == tracing.span_id(root) for s in woken)
