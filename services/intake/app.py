"""Intake's subscribers. Thin: they hand each request to ``handlers.handle_command``."""

from __future__ import annotations

from collections.abc import Mapping

from faststream.nats import NatsBroker

from alongside.runtime import commands
from contracts.envelope import Message
from contracts.intake import SERVICE
from services.intake.handlers import IntakeDeps, handle_command

COMMAND_WORKERS = 32


def register(broker: NatsBroker, deps: IntakeDeps) -> None:
    async def on_intake_command(subject: str, body: bytes, headers: Mapping[str, str]) -> Message:
        return await handle_command(subject, body, headers, deps)

    commands.serve(broker, SERVICE, COMMAND_WORKERS, on_intake_command)
