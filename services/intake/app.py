"""Intake's subscribers. Thin: each command goes to its handler in ``handlers``."""

from __future__ import annotations

from faststream.nats import NatsBroker

from runtime import commands
from services.intake.handlers import IntakeDeps, handlers

COMMAND_WORKERS = 32


def register(broker: NatsBroker, deps: IntakeDeps) -> None:
    commands.serve(broker, handlers, deps, COMMAND_WORKERS, deps.clock)
