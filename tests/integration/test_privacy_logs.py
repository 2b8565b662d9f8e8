"""No log line carries a person's data: a whole journey, with a marker in every personal and
sensitive field, at DEBUG, and not one marker in what any service or library wrote."""

from __future__ import annotations

import json

import pytest
import structlog

from alongside.client import AlongsideClient
from contracts.replies import CommandAccepted, CommandRejected
from runtime.clock import SYSTEM
from runtime.logging import configure
from tests.conftest import Start
from tests.support import (
    MARKERS,
    marked_intake,
    marked_record_check,
    marked_supporter,
    org_today,
    wait_for,
)


@pytest.mark.nats
async def test_a_journey_with_a_marker_in_every_personal_field_logs_none_of_them(
    start: Start,
    client: AlongsideClient,
    org: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure("DEBUG", json=True)
    try:
        await start()
        assert isinstance(await client.submit(org, marked_supporter("s1")), CommandAccepted)
        check = marked_record_check("s1", org_today(SYSTEM))
        assert isinstance(await client.submit(org, check), CommandAccepted)
        assert isinstance(await client.submit(org, marked_intake("c1")), CommandAccepted)
        await wait_for(client, org, "IntakeReceived")
        await wait_for(client, org, "MatchingPolicyDecided")
        # Refused and malformed commands, with the markers in them, take the error paths.
        assert isinstance(await client.submit(org, marked_intake("c1")), CommandRejected)  # exists
        once = marked_intake("c2")
        assert isinstance(await client.submit(org, once, command_id="c2-once"), CommandAccepted)
        other = once.model_copy(update={"has_other_support": not once.has_other_support})
        assert isinstance(await client.submit(org, other, command_id="c2-once"), CommandRejected)
        body = json.dumps({"id": "broken-1", "data": {"summary": MARKERS["summary"]}})
        await client.send_raw(org, "intake", "SubmitIntake", body.encode())
    finally:
        written = capsys.readouterr()
        structlog.reset_defaults()
    logged = "\n".join([written.out, written.err, caplog.text]).lower()
    assert "command_accepted" in logged  # the lines were captured
    leaked = {name for name, marker in MARKERS.items() if marker.lower() in logged}
    assert leaked == set()
