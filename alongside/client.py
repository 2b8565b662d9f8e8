"""A small client for Alongside's commands and events, for the CLI, the demo and tests.

A command is sent until it is answered for good: a reply that it could not be carried out
just then (``CommandUnavailable``), a timeout or no responders (a service or the server
restarting) send the very same bytes again, so the same envelope id, which the service
answers once in effect. Past ``retry_for`` seconds the last such answer stands:
``Unavailable`` (with the reply), or the timeout's own error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from contracts import subjects
from contracts.envelope import Command, Message, RawEnvelope, wrap
from contracts.replies import CommandAccepted, CommandRejected, CommandUnavailable
from runtime import bus
from runtime.asking import answered, parse_any_reply, parse_reply
from runtime.clock import SYSTEM, Clock
from runtime.logging import get_logger

log = get_logger(__name__)

# How long a command is sent again while it is not carried out (or not answered) before the
# client gives up; each call may say otherwise (``retry_for``; 0: send once).
RETRY_FOR_S = 30.0
R = TypeVar("R", bound=Message)


class Unavailable(Exception):
    """The service said, up to the client's deadline, that it could not carry the command out
    just then (``reply``): nothing refused it; send the same command (same id) later."""

    def __init__(self, reply: CommandUnavailable) -> None:
        self.reply = reply
        super().__init__(reply.reason)


class AlongsideClient:
    def __init__(
        self,
        nc: Nats,
        source: str = "alongside/cli",
        clock: Clock = SYSTEM,
        sender: str = subjects.OPERATOR,
    ) -> None:
        """``sender``: the name the connection's credential sends commands under, the
        operator's by default; an organisation's credential's is its name
        (``runtime.access.principal``), and the server refuses any other."""
        self.nc = nc
        self.source = source
        self.clock = clock
        self.sender = sender

    async def send_raw(
        self,
        org: str,
        service: str,
        command_type: str,
        body: bytes,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        retry_for: float = RETRY_FOR_S,
    ) -> CommandAccepted | CommandRejected:
        """``body`` (an envelope) sent until it is answered for good, again and again the
        same bytes for up to ``retry_for`` seconds (module docstring); ``Unavailable`` if the
        service still could not carry it out then."""
        subject = subjects.command(org, service, command_type, self.sender)
        reply = await self._answered(subject, body, timeout, headers, retry_for, parse_reply)
        if isinstance(reply, CommandUnavailable):
            raise Unavailable(reply)
        return reply

    async def request_raw(
        self,
        org: str,
        service: str,
        command_type: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        retry_for: float = RETRY_FOR_S,
    ) -> Message:
        """``body`` as it is (a command kept as it was sent, a dead letter replayed), sent as
        ``send_raw`` sends it; whatever its service answers, ``CommandUnavailable`` included."""
        subject = subjects.command(org, service, command_type, self.sender)
        return await self._answered(subject, body, timeout, headers, retry_for, parse_any_reply)

    async def submit(
        self,
        org: str,
        command: Command,
        command_id: str | None = None,
        timeout: float = 10.0,
        retry_for: float = RETRY_FOR_S,
    ) -> CommandAccepted | CommandRejected:
        """The command in a new envelope (``command_id``, else a new id), as ``send_raw``."""
        envelope = wrap(command, org=org, source=self.source, id=command_id, time=self.clock())
        return await self.send_raw(
            org,
            command.service,
            command.type_name,
            envelope.model_dump_json().encode(),
            timeout,
            bus.headers_of(envelope),
            retry_for,
        )

    async def request(
        self,
        org: str,
        command: Command,
        command_id: str | None = None,
        timeout: float = 10.0,
        retry_for: float = RETRY_FOR_S,
    ) -> Message:
        """Send any command and parse whichever reply its service gives, as ``send_raw``."""
        envelope = wrap(command, org=org, source=self.source, id=command_id, time=self.clock())
        reply = await self.request_raw(
            org,
            command.service,
            command.type_name,
            envelope.model_dump_json().encode(),
            bus.headers_of(envelope),
            timeout,
            retry_for,
        )
        if isinstance(reply, CommandUnavailable):
            raise Unavailable(reply)
        return reply

    async def _answered(
        self,
        subject: str,
        body: bytes,
        timeout: float,
        headers: dict[str, str] | None,
        retry_for: float,
        parse: Callable[[bytes], R],
    ) -> R:
        """The first reply that is not ``CommandUnavailable``, sending ``body`` again after
        the wait the reply asks for (or after a timeout or no responders) while that wait
        ends within ``retry_for`` seconds; else the last reply (or error)."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + retry_for
        while True:
            # Unanswered (a timeout, no responders): sent again there, within what is left.
            raw = await answered(
                self.nc, subject, body, headers or {}, give_up_at - loop.time(), timeout
            )
            reply = parse(raw)
            if not isinstance(reply, CommandUnavailable):
                return reply
            wait = reply.retry_after_s
            if loop.time() + wait > give_up_at:
                return reply
            log.info("command_unavailable", subject=subject, retry_after_s=wait)
            await asyncio.sleep(wait)

    async def events(
        self,
        org: str,
        follow: bool = False,
        idle_s: float = 0.5,
        on_unreadable: Callable[[int, str], None] | None = None,
        durable: str | None = None,
    ) -> AsyncIterator[RawEnvelope]:
        """The organisation's events from the start (its own stream); with ``follow``, then
        wait for more. With ``durable``, through that durable consumer instead, from where
        it stopped, each event acknowledged once yielded: how a subscriber's or an
        integration's credential reads, as it may make no consumer of its own.
        A message that is not an event envelope of its subject (anyone who may publish can
        put one there) is passed over and reported with its stream sequence and why
        (``on_unreadable``, else a warning): one such message used to end every later
        run of ``alongside events``."""
        messages = (
            self._pulled(org, durable, follow, idle_s)
            if durable is not None
            else self._ordered(org, follow, idle_s)
        )
        async for msg in messages:
            try:
                envelope = RawEnvelope.model_validate_json(msg.data)
                if envelope.type != subjects.last_token(msg.subject):
                    raise ValueError(f"type {envelope.type!r} on {msg.subject}")
            except ValueError as error:  # pydantic's ValidationError is a ValueError
                why = f"not an event envelope: {str(error).splitlines()[0]}"
                sequence = msg.metadata.sequence.stream
                if on_unreadable is not None:
                    on_unreadable(sequence, why)
                else:
                    log.warning("unreadable_event", org=org, stream_sequence=sequence)
                continue
            yield envelope

    async def _ordered(self, org: str, follow: bool, idle_s: float) -> AsyncIterator[Msg]:
        js = self.nc.jetstream()
        sub = await js.subscribe(
            subjects.events(org),
            stream=subjects.org_events_stream(org),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        try:
            while True:
                try:
                    yield await sub.next_msg(timeout=idle_s if not follow else 3600)
                except TimeoutError:
                    if follow:
                        continue
                    return
        finally:
            await sub.unsubscribe()

    async def _pulled(
        self, org: str, durable: str, follow: bool, idle_s: float
    ) -> AsyncIterator[Msg]:
        js = self.nc.jetstream()
        sub = await js.pull_subscribe_bind(durable, subjects.org_events_stream(org))
        try:
            while True:
                try:
                    batch = await sub.fetch(64, timeout=idle_s if not follow else 30)
                except TimeoutError:
                    if follow:
                        continue
                    return
                for msg in batch:
                    yield msg
                    await msg.ack()
        finally:
            await sub.unsubscribe()


def summarise(envelope: RawEnvelope) -> dict[str, Any]:
    """An event as a printable line: what happened, when, and its (non-personal) data."""
    return {
        "time": envelope.time.isoformat(timespec="seconds"),
        "type": envelope.type,
        "id": envelope.id,
        **envelope.data,
    }
