"""Scheduling's subscribers and background work. Thin: handlers hold the logic."""

from __future__ import annotations

from functools import partial

from faststream.nats import NatsBroker

from alongside.runtime import commands, consumer, periodic, topology
from contracts.scheduling import SERVICE
from services.scheduling import handlers
from services.scheduling.handlers import SchedulingDeps

COMMAND_WORKERS = 16


def register(broker: NatsBroker, deps: SchedulingDeps) -> None:
    commands.serve(broker, SERVICE, COMMAND_WORKERS, partial(handlers.handle_command, deps=deps))
    # Replicas share this durable consumer: each event is handled by one of them.
    consumer.subscribe(
        broker, topology.SCHEDULING_CONSUMER, deps.settings, partial(handlers.on_event, deps=deps)
    )


async def run(deps: SchedulingDeps) -> None:
    """Now and then: end services whose funded period is over, and make sure every supporter
    has supervision and a debrief booked."""

    async def sweep() -> None:
        await periodic.attempt(lambda: handlers.end_services(deps), "service_end")
        await periodic.attempt(lambda: handlers.plan_all_supervision(deps), "supervision_planning")

    await periodic.every(deps.settings.sweep_interval_s, sweep, "scheduling_sweep")
