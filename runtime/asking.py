"""One way for a service to ask another: a command out over request/reply, its reply typed.

Services ask each other rarely and only for what they cannot decide alone (the
rules service judges a booking; intake records a support person). A command sent
on behalf of an event or another command carries an id derived from its cause,
so a redelivery sends the same command and gets the same answer.

A command the other service could not carry out just then (``CommandUnavailable``) is sent
again with the same id, after the delay it asks for, a few times; then ``NotYet``: the
event that caused it is looked at again later, never taken for a refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from nats.aio.client import Client as Nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import Field, TypeAdapter

from contracts import subjects
from contracts.envelope import Command, RawEnvelope, wrap
from contracts.intake import PersonData
from contracts.matching import BatchAssigned
from contracts.notifications import LinkOpened
from contracts.replies import CommandAccepted, CommandRejected, CommandReply, CommandUnavailable
from contracts.rules import EvaluateRules, RulesEvaluated
from contracts.views import CaseView, DecisionView, Directory, SupporterView
from runtime import bus, tracing
from runtime.changes import NotYet
from runtime.clock import Clock
from runtime.logging import get_logger

log = get_logger(__name__)

REQUEST_TIMEOUT_S = 10.0
# A client's command (``any``: the console's) that is not answered is sent again, the same
# bytes and so the same id, for up to this long in all: a timeout (after a server restart
# the server refuses the reply to a request that was in flight, "Publish Violation" on the
# inbox, though the command was carried out; the service keeps that reply for the retry) or
# no responders (its service restarting). Then the last error stands.
ANSWER_WITHIN_S = 20.0
_UNANSWERED_WAITS_S = (0.25, 0.5, 1.0, 2.0)
# A command not carried out just then is sent this many times in all before the event that
# caused it is left for later (``NotYet``), each time after the wait the reply asked for, at
# most ``MAX_WAIT_S`` (an event's handler holds its delivery meanwhile).
ATTEMPTS = 3
MAX_WAIT_S = 5.0

Reply = CommandAccepted | CommandRejected | CommandUnavailable
_REPLY: TypeAdapter[Reply] = TypeAdapter(CommandReply)
# Whatever a service answers a command with.
AnyReply = (
    CommandAccepted
    | CommandRejected
    | CommandUnavailable
    | RulesEvaluated
    | BatchAssigned
    | PersonData
    | CaseView
    | SupporterView
    | DecisionView
    | Directory
    | LinkOpened
)
_ANY_REPLY: TypeAdapter[AnyReply] = TypeAdapter(Annotated[AnyReply, Field(discriminator="status")])
_EVALUATED: TypeAdapter[RulesEvaluated | CommandRejected | CommandUnavailable] = TypeAdapter(
    Annotated[RulesEvaluated | CommandRejected | CommandUnavailable, Field(discriminator="status")]
)
R = TypeVar("R")


def parse_reply(raw: bytes) -> Reply:
    return _REPLY.validate_json(raw)


def parse_any_reply(raw: bytes) -> AnyReply:
    return _ANY_REPLY.validate_json(raw)


class Asking:
    """Commands out as ``sender``: the name the connection's credential may send under
    (``access.principal``), a service's own or the console's."""

    def __init__(self, nc: Nats, source: str, clock: Clock, sender: str) -> None:
        self.nc = nc
        self.source = source
        self.clock = clock
        self.sender = sender

    async def command(
        self, org: str, command: Command, command_id: str, cause: RawEnvelope | None = None
    ) -> CommandAccepted | CommandRejected:
        """Another service's command; ``command_id`` derives from what caused it. Not carried
        out after ``ATTEMPTS`` (each with this id): ``NotYet``."""

        async def send() -> Reply:
            return parse_reply(await self._request(org, command, command_id, cause))

        return await _until_carried_out(org, command, send)

    async def any(
        self, org: str, command: Command, command_id: str | None, source: str | None = None
    ) -> AnyReply:
        """Any command, as a client sends it (``command_id``: the client's own, or new;
        ``source``: who it is from, if more precisely than this client); not answered, sent
        again with the same id for up to ``ANSWER_WITHIN_S``. (A service's own commands are
        sent once: the event that caused one is redelivered instead.)"""
        return parse_any_reply(
            await self._request(org, command, command_id, None, source, ANSWER_WITHIN_S)
        )

    async def evaluate(self, org: str, command: EvaluateRules) -> RulesEvaluated | CommandRejected:
        """A judgement of the rules service (no effect, so no stable id is needed); not
        given after ``ATTEMPTS``: ``NotYet``."""

        async def send() -> RulesEvaluated | CommandRejected | CommandUnavailable:
            return _EVALUATED.validate_json(await self._request(org, command, None, None))

        return await _until_carried_out(org, command, send)

    async def _request(
        self,
        org: str,
        command: Command,
        command_id: str | None,
        cause: RawEnvelope | None,
        source: str | None = None,
        within_s: float = 0.0,
    ) -> bytes:
        envelope = wrap(
            command,
            org=org,
            source=source or self.source,
            id=command_id,
            time=self.clock(),
            cause=cause,
            traceparent=tracing.current(),
        )
        subject = subjects.command(org, command.service, command.type_name, self.sender)
        return await answered(
            self.nc,
            subject,
            envelope.model_dump_json().encode(),
            bus.headers_of(envelope),
            within_s,
        )


async def answered(
    nc: Nats,
    subject: str,
    body: bytes,
    headers: dict[str, str],
    within_s: float,
    timeout_s: float | None = None,
) -> bytes:
    """The reply to ``body``, sent again (the very same bytes) after a timeout or no
    responders while another attempt fits in ``within_s`` seconds from the first (each
    waits at most what is left; 0: send once); then the last error. Each attempt waits
    ``timeout_s`` at most (``REQUEST_TIMEOUT_S``)."""
    timeout_s = REQUEST_TIMEOUT_S if timeout_s is None else timeout_s
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + within_s
    unanswered = 0
    while True:
        left = give_up_at - loop.time()
        try:
            wait_s = timeout_s if unanswered == 0 else min(timeout_s, left)
            response = await nc.request(subject, body, timeout=wait_s, headers=headers)
            return response.data
        except (NatsTimeoutError, NoRespondersError) as error:
            pause = _UNANSWERED_WAITS_S[min(unanswered, len(_UNANSWERED_WAITS_S) - 1)]
            unanswered += 1
            if give_up_at - loop.time() - pause < _UNANSWERED_WAITS_S[0]:
                raise
            log.info(
                "command_unanswered",
                subject=subject,
                error=type(error).__name__,
                attempt=unanswered,
            )
            await asyncio.sleep(pause)


async def _until_carried_out(
    org: str, command: Command, send: Callable[[], Awaitable[R | CommandUnavailable]]
) -> R:
    """``send``'s reply, sent again (by ``send``, the same envelope id) while the other
    service answers that it could not carry the command out just then; ``NotYet`` after
    ``ATTEMPTS``, so what caused it is looked at again later rather than taken as refused."""
    for attempt in range(1, ATTEMPTS + 1):
        reply = await send()
        if not isinstance(reply, CommandUnavailable):
            return reply
        log.info(
            "command_unavailable",
            org=org,
            command_type=command.type_name,
            attempt=attempt,
            retry_after_s=reply.retry_after_s,
        )
        if attempt < ATTEMPTS:
            await asyncio.sleep(min(reply.retry_after_s, MAX_WAIT_S))
    raise NotYet(
        f"{command.service} could not carry out {command.type_name} after {ATTEMPTS} attempts"
    )
