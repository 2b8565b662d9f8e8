"""Intake's subscribers. Thin: they hand each request to ``handlers.handle_command``."""

from __future__ import annotations

from functools import partial

from faststream.nats import NatsBroker

from alongside.runtime import commands
from contracts.intake import SERVICE
from services.intake.handlers import IntakeDeps, handle_command

COMMAND_WORKERS = 32


def register(broker: NatsBroker, deps: IntakeDeps) -> None:
    commands.serve(broker, SERVICE, COMMAND_WORKERS, partial(handle_command, deps=deps))
