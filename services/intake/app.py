"""Intake's subscribers. Thin: they hand the raw request to ``handlers.handle_command``."""

from __future__ import annotations

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from contracts import subjects
from contracts.intake import SERVICE
from services.intake.handlers import IntakeDeps, handle_command

COMMAND_WORKERS = 32


def register(broker: NatsBroker, deps: IntakeDeps) -> None:
    # A queue group: replicas share the commands, each answered once. Commands
    # on one record may run concurrently: revisions in KV keep them serial in effect.
    @broker.subscriber(
        subjects.commands_of(SERVICE),
        queue=SERVICE,
        max_workers=COMMAND_WORKERS,
        title="intake commands",
    )
    async def on_intake_command(message: NatsMessage) -> bytes:
        raw = message.raw_message
        reply = await handle_command(raw.subject, raw.data, raw.headers or {}, deps)
        return reply.model_dump_json().encode()
