"""Wiring: scheduling's dependencies from a live NATS connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client

from contracts.records import (
    CaseSchedule,
    GroupSession,
    Record,
    SchedulingSettings,
    SupporterSupervision,
)
from runtime import topology
from runtime.asking import Asking
from runtime.clock import Clock
from runtime.settings import Settings
from runtime.state import DecisionStore, Policies, RecordReader
from runtime.store import Changer, EventPublisher, RecordStore, ReplyStore
from services.scheduling.adapters import SOURCE, Reminders
from services.scheduling.handlers import SchedulingDeps, reminders_keeper

R = TypeVar("R", bound=Record)
Before = Callable[[str, str, R], Awaitable[None]]


async def bootstrap(nc: Client, settings: Settings, clock: Clock) -> SchedulingDeps:
    js = nc.jetstream()
    replies = ReplyStore(await js.key_value(topology.REPLIES_BUCKET))
    events = EventPublisher(js)
    organisations = await js.key_value(topology.ORGANISATIONS_BUCKET)
    policies = Policies(RecordStore(organisations, SchedulingSettings))
    reminders = Reminders(js)

    async def changer(bucket: str, record: type[R], before: Before[R] | None = None) -> Changer[R]:
        store = RecordStore(await js.key_value(bucket), record)
        return Changer(store, replies, events, SOURCE, clock, before)

    schedules = RecordStore(await js.key_value(topology.SCHEDULES_BUCKET), CaseSchedule)
    keep_reminders = reminders_keeper(reminders, policies, schedules, clock)
    return SchedulingDeps(
        js=js,
        settings_store=Changer(policies.store, replies, events, SOURCE, clock),
        schedules=Changer(schedules, replies, events, SOURCE, clock, keep_reminders),
        supervision=await changer(topology.SUPERVISION_BUCKET, SupporterSupervision),
        groups=await changer(topology.GROUPS_BUCKET, GroupSession),
        policies=policies,
        records=RecordReader(
            await js.key_value(topology.SUPPORTERS_BUCKET),
            await js.key_value(topology.CASES_BUCKET),
        ),
        decisions=DecisionStore(await js.key_value(topology.DECISIONS_BUCKET)),
        asking=Asking(nc, SOURCE, clock),
        settings=settings,
        clock=clock,
    )
