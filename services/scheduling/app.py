"""Scheduling's subscribers and background work. Thin: handlers hold the logic."""

from __future__ import annotations

from faststream.nats import NatsBroker

from runtime import commands, consumer, periodic, topology
from services.scheduling import handlers, sweeps
from services.scheduling.gathering import SchedulingDeps

COMMAND_WORKERS = 16


def register(broker: NatsBroker, deps: SchedulingDeps) -> None:
    commands.serve(broker, handlers.handlers, deps, COMMAND_WORKERS, deps.clock, deps.settings)
    # Replicas share this durable consumer: each event is handled by one of them.
    consumer.subscribe(
        broker, topology.SCHEDULING_CONSUMER, deps.settings, handlers.handlers, deps, deps.clock
    )


async def run(deps: SchedulingDeps) -> None:
    """Now and then: finish what a crash left between a commit and its announcement, end
    services whose funded period is over, and make sure every supporter has supervision and
    a debrief booked."""

    async def sweep() -> None:
        await periodic.attempt(lambda: sweeps.finish_outboxes(deps), "outbox_flush")
        await periodic.attempt(lambda: sweeps.end_services(deps), "service_end")
        await periodic.attempt(lambda: sweeps.plan_all_supervision(deps), "supervision_planning")

    await periodic.every(deps.settings.sweep_interval_s, sweep, "scheduling_sweep")
