"""Not carried out just now is not a refusal: a handler that raised is answered
``CommandUnavailable``, and every client of ours sends the same command (the same id) again.
Without a server: the serve wrapper's core, and the clients over a scripted connection."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nats.aio.client import Client as Nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from alongside import sample
from alongside.client import AlongsideClient, Unavailable
from contracts.envelope import Message
from contracts.intake import SubmitIntake
from contracts.replies import CommandAccepted, CommandRejected, CommandUnavailable, FieldError
from runtime import commands
from runtime.asking import Asking
from runtime.changes import Contended, NotYet
from runtime.clock import ManualClock
from runtime.dispatch import Handlers, Received
from runtime.vault import Erased
from tests.fakes import received

NOW = datetime(2027, 3, 3, 9, tzinfo=UTC)
COMMAND = sample.intake(random.Random(1), "c1")


def raising(error: Exception) -> Handlers[None]:
    handlers: Handlers[None] = Handlers("intake")

    @handlers.on(SubmitIntake)
    async def submit(command: SubmitIntake, meta: Received, deps: None) -> Message:
        raise error

    return handlers


async def test_a_handler_that_raises_is_answered_unavailable_in_plain_words() -> None:
    # During a nats-server restart intakes were answered "rejected ... (NoStreamResponseError)".
    failing = raising(RuntimeError("NoStreamResponseError: no response from stream"))

    reply, outcome = await commands.carry_out(
        failing, received(COMMAND, command_id="k7"), None, 2.5
    )

    assert isinstance(reply, CommandUnavailable)
    assert (reply.status, reply.command_id, reply.command_type) == (
        "unavailable",
        "k7",
        "SubmitIntake",
    )
    assert reply.retry_after_s == 2.5
    assert reply.reason == commands.NOT_CARRIED_OUT
    assert "Error" not in reply.reason  # the exception is for the log only
    assert "NoStream" not in reply.reason
    assert outcome == "failed"  # the metric's label, as before


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (Contended("org-1.c1 kept changing"), commands.BUSY),
        (NotYet("no decision on record"), commands.NOT_READY),
        (KeyError("c1"), commands.NOT_CARRIED_OUT),
    ],
)
async def test_each_transient_cause_says_so_and_none_is_a_rejection(
    error: Exception, reason: str
) -> None:
    reply, outcome = await commands.carry_out(raising(error), received(COMMAND), None, 1.0)
    assert isinstance(reply, CommandUnavailable)
    assert reply.reason == reason
    assert "same id" in reply.reason
    assert outcome == "failed"


async def test_a_command_about_someone_erased_is_still_refused_for_good() -> None:
    reply, outcome = await commands.carry_out(raising(Erased("c1")), received(COMMAND), None, 1.0)
    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "data"
    assert outcome == "rejected"


async def test_a_handlers_own_reply_passes_through_with_its_status() -> None:
    handlers: Handlers[None] = Handlers("intake")

    @handlers.on(SubmitIntake)
    async def submit(command: SubmitIntake, meta: Received, deps: None) -> Message:
        return CommandAccepted(
            command_id=meta.envelope.id, command_type="SubmitIntake", event_ids=["e1"]
        )

    reply, outcome = await commands.carry_out(handlers, received(COMMAND), None, 1.0)
    assert isinstance(reply, CommandAccepted)
    assert outcome == "accepted"


# The clients ----------------------------------------------------------------------------


class Scripted:
    """A NATS connection answering each request with the next of ``answers`` (a reply, or an
    error to raise), keeping what was sent."""

    def __init__(self, answers: Sequence[Message | Exception]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []
        self.at: list[float] = []

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float = 1.0,
        headers: dict[str, str] | None = None,
    ) -> Any:
        self.sent.append(payload)
        self.at.append(asyncio.get_running_loop().time())
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(data=answer.model_dump_json().encode())

    def ids(self) -> list[str]:
        return [json.loads(body)["id"] for body in self.sent]


def unavailable(after_s: float, command_id: str | None = "k1") -> CommandUnavailable:
    return CommandUnavailable(
        command_id=command_id,
        command_type="SubmitIntake",
        reason=commands.NOT_CARRIED_OUT,
        retry_after_s=after_s,
    )


ACCEPTED = CommandAccepted(command_id="k1", command_type="SubmitIntake", event_ids=["e1"])


def client_over(nc: Scripted) -> AlongsideClient:
    return AlongsideClient(cast(Nats, nc), source="tests", clock=ManualClock(NOW))


async def test_the_client_sends_the_same_bytes_again_until_it_is_carried_out() -> None:
    nc = Scripted(
        [unavailable(0.05), NatsTimeoutError(), NoRespondersError(), unavailable(0.05), ACCEPTED]
    )

    reply = await client_over(nc).submit("org-1", COMMAND, command_id="k1", retry_for=10)

    assert reply == ACCEPTED
    assert len(nc.sent) == 5
    assert len(set(nc.sent)) == 1  # the very same envelope each time: one command
    assert nc.ids() == ["k1"] * 5
    assert nc.at[1] - nc.at[0] >= 0.05  # the wait the service asked for


async def test_past_its_deadline_the_client_says_unavailable_with_the_reply() -> None:
    nc = Scripted([unavailable(0.01), unavailable(0.01), unavailable(5.0)])

    with pytest.raises(Unavailable) as still:
        await client_over(nc).submit("org-1", COMMAND, retry_for=1.0)

    assert still.value.reply.retry_after_s == 5.0  # a wait past the deadline is not waited
    assert len(nc.sent) == 3
    assert len(set(nc.ids())) == 1


async def test_with_no_time_to_retry_the_client_sends_once() -> None:
    nc = Scripted([unavailable(0.01)])
    with pytest.raises(Unavailable):
        await client_over(nc).submit("org-1", COMMAND, retry_for=0)
    nc = Scripted([NoRespondersError()])
    with pytest.raises(NoRespondersError):
        await client_over(nc).submit("org-1", COMMAND, retry_for=0)
    assert len(nc.sent) == 1


async def test_a_rejection_is_not_sent_again() -> None:
    rejected = CommandRejected(
        command_id="k1",
        command_type="SubmitIntake",
        errors=[FieldError(field="data.case_id", reason="no")],
    )
    nc = Scripted([rejected])
    assert await client_over(nc).submit("org-1", COMMAND, retry_for=10) == rejected
    assert len(nc.sent) == 1


async def test_any_reply_is_waited_for_the_same_way() -> None:
    nc = Scripted([unavailable(0.01), ACCEPTED])
    assert await client_over(nc).request("org-1", COMMAND, retry_for=10) == ACCEPTED
    assert len(nc.sent) == 2
    assert len(set(nc.sent)) == 1
    nc = Scripted([unavailable(0.01)] * 2)
    with pytest.raises(Unavailable):
        await client_over(nc).request("org-1", COMMAND, retry_for=0.005)


# One service asking another ---------------------------------------------------------------


def asking_over(nc: Scripted) -> Asking:
    return Asking(cast(Nats, nc), "tests", ManualClock(NOW), "matching")


async def test_a_service_asks_again_with_the_same_id_then_leaves_the_event_for_later() -> None:
    nc = Scripted([unavailable(0.01), unavailable(0.01), ACCEPTED])
    assert await asking_over(nc).command("org-1", COMMAND, "derived-1") == ACCEPTED
    assert nc.ids() == ["derived-1"] * 3

    nc = Scripted([unavailable(0.01)] * 4)
    with pytest.raises(NotYet):  # redelivered later, never taken for a refusal
        await asking_over(nc).command("org-1", COMMAND, "derived-2")
    assert nc.ids() == ["derived-2"] * 3  # a bounded number of times
