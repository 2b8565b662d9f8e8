"""A small client for Alongside's commands and events, for the CLI, the demo and tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.aio.client import Client as Nats
from nats.js.api import DeliverPolicy

from contracts import subjects
from contracts.envelope import Command, Message, RawEnvelope, wrap
from contracts.replies import CommandAccepted, CommandRejected
from runtime import bus
from runtime.asking import parse_any_reply, parse_reply
from runtime.clock import SYSTEM, Clock
from runtime.logging import get_logger

log = get_logger(__name__)


class AlongsideClient:
    def __init__(self, nc: Nats, source: str = "alongside/cli", clock: Clock = SYSTEM) -> None:
        self.nc = nc
        self.source = source
        self.clock = clock

    async def send_raw(
        self, org: str, service: str, command_type: str, body: bytes, timeout: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> CommandAccepted | CommandRejected:  # fmt: skip
        subject = subjects.command(org, service, command_type)
        response = await self.nc.request(subject, body, timeout=timeout, headers=headers)
        return parse_reply(response.data)

    async def submit(
        self, org: str, command: Command, command_id: str | None = None, timeout: float = 10.0
    ) -> CommandAccepted | CommandRejected:
        envelope = wrap(command, org=org, source=self.source, id=command_id, time=self.clock())
        return await self.send_raw(
            org, command.service, command.type_name, envelope.model_dump_json().encode(), timeout,
            bus.headers_of(envelope),
        )  # fmt: skip

    async def request(
        self, org: str, command: Command, command_id: str | None = None, timeout: float = 10.0
    ) -> Message:
        """Send any command and parse whichever reply its service gives."""
        envelope = wrap(command, org=org, source=self.source, id=command_id, time=self.clock())
        subject = subjects.command(org, command.service, command.type_name)
        response = await self.nc.request(
            subject, envelope.model_dump_json().encode(), timeout=timeout,
            headers=bus.headers_of(envelope),
        )  # fmt: skip
        return parse_any_reply(response.data)

    async def events(
        self, org: str, follow: bool = False, idle_s: float = 0.5,
        on_unreadable: Callable[[int, str], None] | None = None,
    ) -> AsyncIterator[RawEnvelope]:  # fmt: skip
        """The organisation's events from the start (its own stream, so an organisation's
        credential can read them); with ``follow``, then wait for more.
        A message that is not an event envelope of its subject (anyone who may publish can
        put one there) is passed over and reported with its stream sequence and why
        (``on_unreadable``, else a warning): one such message used to end every later
        run of ``alongside events``."""
        js = self.nc.jetstream()
        sub = await js.subscribe(
            subjects.events(org), stream=subjects.org_events_stream(org),
            ordered_consumer=True, deliver_policy=DeliverPolicy.ALL,
        )  # fmt: skip
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=idle_s if not follow else 3600)
                except TimeoutError:
                    if follow:
                        continue
                    return
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
