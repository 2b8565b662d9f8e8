"""Intake's subscribers and background work. Thin: handlers hold the logic."""

from __future__ import annotations

import asyncio

from faststream.nats import NatsBroker

from runtime import commands, metrics, periodic
from runtime.logging import get_logger
from services.intake import retention
from services.intake.handlers import IntakeDeps, finish_outboxes, handlers

log = get_logger(__name__)

COMMAND_WORKERS = 32


def register(broker: NatsBroker, deps: IntakeDeps) -> None:
    commands.serve(broker, handlers, deps, COMMAND_WORKERS, deps.clock, deps.settings)


async def run(deps: IntakeDeps) -> None:
    """Now and then, finish what a crash left between a commit and its announcement (the
    bootstrap did so once already, before the service answered anything), and erase what
    has been kept its time (``retention``)."""

    async def sweep() -> None:
        finished = await finish_outboxes(deps, deps.settings.settle_s)
        if finished:
            log.error("intake_outboxes_finished", count=finished)
            metrics.RECONCILED.labels("intake", "outboxes_finished").inc(finished)
        swept = await retention.sweep(deps)
        if swept.cases_erased or swept.dead_letter_days_erased:
            log.info(
                "retention_swept",
                cases_erased=swept.cases_erased,
                dead_letter_days_erased=swept.dead_letter_days_erased,
            )

    await asyncio.sleep(deps.settings.sweep_interval_s)
    await periodic.every(deps.settings.sweep_interval_s, sweep, "intake_sweep")
