"""Scheduling's subscribers and background work. Thin: handlers hold the logic."""

from __future__ import annotations

from collections.abc import Mapping

from faststream.nats import NatsBroker

from alongside.runtime import commands, consumer, periodic, topology
from alongside.runtime.periodic import every
from contracts.envelope import Message, RawEnvelope
from contracts.scheduling import SERVICE
from services.scheduling import handlers
from services.scheduling.handlers import SchedulingDeps

COMMAND_WORKERS = 16


def register(broker: NatsBroker, deps: SchedulingDeps) -> None:
    async def on_scheduling_command(
        subject: str, body: bytes, headers: Mapping[str, str]
    ) -> Message:
        return await handlers.handle_command(subject, body, headers, deps)

    commands.serve(broker, SERVICE, COMMAND_WORKERS, on_scheduling_command)

    async def on_event(envelope: RawEnvelope) -> None:
        await handlers.on_event(envelope, deps)

    # Replicas share this durable consumer: each event is handled by one of them.
    consumer.subscribe(broker, topology.SCHEDULING_CONSUMER, deps.settings, on_event)


async def run(deps: SchedulingDeps) -> None:
    """Now and then: end services whose funded period is over, and make sure every supporter
    has supervision and a debrief booked."""

    async def sweep() -> None:
        await periodic.attempt(lambda: handlers.end_services(deps), "service_end")
        await periodic.attempt(lambda: handlers.plan_all_supervision(deps), "supervision_planning")

    await every(deps.settings.sweep_interval_s, sweep, "scheduling_sweep")
