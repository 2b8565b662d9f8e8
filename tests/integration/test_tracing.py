"""One trace from a command to every event it causes, across services, in the envelope and
in the NATS headers a CloudEvents or OpenTelemetry consumer reads."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from alongside.client import AlongsideClient
from contracts import subjects
from contracts.envelope import RawEnvelope, wrap
from contracts.replies import CommandAccepted
from runtime.clock import SYSTEM
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
    reply = await client.send_raw(org, "intake", "SubmitIntake",
                                  envelope.model_dump_json().encode())  # fmt: skip
    assert isinstance(reply, CommandAccepted)
    await wait_for(client, org, "MatchProposed", 1)

    # Every event about the case, from intake, rules and matching, as stored with headers.
    sub = await nc.jetstream().subscribe(
        subjects.events(org), stream=subjects.org_events_stream(org), ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )  # fmt: skip
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
