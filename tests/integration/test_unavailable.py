"""Not carried out just now, against the real server: a handler that fails is answered
``unavailable`` (never ``rejected``), and the client sends the same command again, with the
same id, until it is carried out, once."""

from __future__ import annotations

import json
import random

import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

from alongside import sample
from alongside.client import AlongsideClient, Unavailable
from contracts import subjects
from contracts.envelope import wrap
from contracts.replies import CommandAccepted
from runtime import topology
from runtime.clock import SYSTEM
from services.intake.handlers import handlers as intake_handlers
from tests.flaky import flaky
from tests.support import seen, wait_for

pytestmark = pytest.mark.usefixtures("intake")


async def test_a_failed_attempt_is_sent_again_with_its_id_and_carried_out_once(
    client: AlongsideClient, org: str
) -> None:
    command = sample.intake(random.Random(1), "c1")
    # Carried out, then the handler fails: only the reply is lost (as when the stream stopped
    # answering after the record was committed).
    with flaky(intake_handlers, "SubmitIntake", fail=1, after=True) as calls:
        reply = await client.submit(org, command, command_id="intake-c1")

    assert isinstance(reply, CommandAccepted)
    assert reply.command_id == "intake-c1"
    assert calls.ids == ["intake-c1", "intake-c1"]  # sent again, the same id
    [announced] = await wait_for(client, org, "IntakeReceived")
    assert announced.id == reply.event_ids[0]
    assert len(await seen(client, org, "IntakeReceived")) == 1  # one effect


async def test_the_reply_says_unavailable_in_plain_words_and_nothing_is_kept(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    command = sample.intake(random.Random(2), "c2")
    envelope = wrap(command, org=org, source="tests", id="intake-c2", time=SYSTEM())
    subject = subjects.command(org, "intake", "SubmitIntake", subjects.OPERATOR)
    with flaky(intake_handlers, "SubmitIntake", fail=-1) as calls:
        raw = await nc.request(subject, envelope.model_dump_json().encode(), timeout=10)
        with pytest.raises(Unavailable) as still:
            await client.submit(org, command, command_id="intake-c2", retry_for=1.5)

    said = json.loads(raw.data)
    assert said["status"] == "unavailable"  # not "rejected"
    assert said["command_id"] == "intake-c2"
    assert said["retry_after_s"] == 1.0  # ALONGSIDE_RETRY_AFTER_S
    assert "NoStreamResponseError" not in said["reason"]
    assert "Flaked" not in said["reason"]
    assert still.value.reply.command_id == "intake-c2"
    assert calls.ids == ["intake-c2"] * 3  # the raw request, then twice within 1.5 s
    cases = await nc.jetstream().key_value(topology.CASES_BUCKET)
    with pytest.raises(KeyNotFoundError):  # failed before it did anything: nothing kept
        await cases.get(f"{org}.c2")

    # Once the service can carry it out, the same id is one command, carried out once.
    again = await client.submit(org, command, command_id="intake-c2")
    assert isinstance(again, CommandAccepted)
    assert len(await wait_for(client, org, "IntakeReceived")) == 1
