"""One way for a service to ask another: a command out over request/reply, its reply typed.

Services ask each other rarely and only for what they cannot decide alone (the
rules service judges a booking; intake records a support person). A command sent
on behalf of an event or another command carries an id derived from its cause,
so a redelivery sends the same command and gets the same answer.
"""

from __future__ import annotations

from typing import Annotated

from nats.aio.client import Client as Nats
from pydantic import Field, TypeAdapter

from contracts import subjects
from contracts.envelope import Command, RawEnvelope, wrap
from contracts.intake import PersonData
from contracts.matching import BatchAssigned
from contracts.replies import CommandAccepted, CommandRejected, CommandReply
from contracts.rules import EvaluateRules, RulesEvaluated
from contracts.views import CaseView, DecisionView, SupporterView
from runtime import bus, tracing
from runtime.clock import Clock

REQUEST_TIMEOUT_S = 10.0

_REPLY: TypeAdapter[CommandAccepted | CommandRejected] = TypeAdapter(CommandReply)
# Whatever a service answers a command with.
AnyReply = (
    CommandAccepted
    | CommandRejected
    | RulesEvaluated
    | BatchAssigned
    | PersonData
    | CaseView
    | SupporterView
    | DecisionView
)
_ANY_REPLY: TypeAdapter[AnyReply] = TypeAdapter(Annotated[AnyReply, Field(discriminator="status")])
_EVALUATED: TypeAdapter[RulesEvaluated | CommandRejected] = TypeAdapter(
    RulesEvaluated | CommandRejected
)


def parse_reply(raw: bytes) -> CommandAccepted | CommandRejected:
    return _REPLY.validate_json(raw)


def parse_any_reply(raw: bytes) -> AnyReply:
    return _ANY_REPLY.validate_json(raw)


class Asking:
    def __init__(self, nc: Nats, source: str, clock: Clock) -> None:
        self.nc = nc
        self.source = source
        self.clock = clock

    async def command(
        self, org: str, command: Command, command_id: str, cause: RawEnvelope | None = None
    ) -> CommandAccepted | CommandRejected:
        """Another service's command; ``command_id`` derives from what caused it."""
        return parse_reply(await self._request(org, command, command_id, cause))

    async def any(
        self, org: str, command: Command, command_id: str | None, source: str | None = None
    ) -> AnyReply:
        """Any command, as a client sends it (``command_id``: the client's own, or new;
        ``source``: who it is from, if more precisely than this client)."""
        return parse_any_reply(await self._request(org, command, command_id, None, source))

    async def evaluate(self, org: str, command: EvaluateRules) -> RulesEvaluated | CommandRejected:
        """A judgement of the rules service (no effect, so no stable id is needed)."""
        return _EVALUATED.validate_json(await self._request(org, command, None, None))

    async def _request(
        self, org: str, command: Command, command_id: str | None, cause: RawEnvelope | None,
        source: str | None = None,
    ) -> bytes:  # fmt: skip
        envelope = wrap(
            command, org=org, source=source or self.source, id=command_id, time=self.clock(),
            cause=cause, traceparent=tracing.current(),
        )  # fmt: skip
        subject = subjects.command(org, command.service, command.type_name)
        response = await self.nc.request(
            subject, envelope.model_dump_json().encode(), timeout=REQUEST_TIMEOUT_S,
            headers=bus.headers_of(envelope),
        )  # fmt: skip
        return response.data
