"""Wiring: scheduling's dependencies from a live NATS connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from nats.aio.client import Client
from nats.js.kv import KeyValue

from contracts.records import (
    CaseSchedule,
    GroupSession,
    Record,
    SchedulingSettings,
    SupporterSupervision,
)
from contracts.scheduling import SERVICE
from runtime import topology
from runtime.asking import Asking
from runtime.clock import Clock
from runtime.settings import Settings
from runtime.state import DecisionReader, Policies, RecordReader
from runtime.store import RecordStore
from runtime.unit import EventPublisher, ReplyStore, UnitOfWork
from runtime.vault import Vault, sealer_of
from services.scheduling.adapters import SOURCE, Reminders
from services.scheduling.gathering import SchedulingDeps
from services.scheduling.reminders import reminders_keeper

R = TypeVar("R", bound=Record)

BUCKETS = (
    topology.REPLIES_BUCKET,
    topology.ORGANISATIONS_BUCKET,
    topology.SCHEDULES_BUCKET,
    topology.SUPERVISION_BUCKET,
    topology.GROUPS_BUCKET,
    topology.SUPPORTERS_BUCKET,
    topology.CASES_BUCKET,
    topology.DECISIONS_BUCKET,
)


async def bootstrap(nc: Client, settings: Settings, clock: Clock) -> SchedulingDeps:
    """Bind to the buckets the topology provisioned (never declare them here) and wire."""
    js = nc.jetstream()
    buckets = {name: await js.key_value(name) for name in BUCKETS}
    return wire(
        buckets,
        EventPublisher(js),
        Asking(nc, SOURCE, clock, SERVICE),
        Reminders(js),
        settings,
        clock,
        Vault.of(js, settings),
    )


def wire(
    buckets: Mapping[str, KeyValue],
    events: EventPublisher,
    asking: Asking,
    reminders: Reminders,
    settings: Settings,
    clock: Clock,
    vault: Vault,
) -> SchedulingDeps:
    """Scheduling's dependencies from its adapters: NATS in production, fakes in the tests."""
    replies = ReplyStore(buckets[topology.REPLIES_BUCKET])
    policies = Policies(RecordStore(buckets[topology.ORGANISATIONS_BUCKET], SchedulingSettings))

    def unit(bucket: str, record: type[R]) -> UnitOfWork[R]:
        return UnitOfWork(RecordStore(buckets[bucket], record), clock, SOURCE, replies, events)

    schedules = RecordStore(
        buckets[topology.SCHEDULES_BUCKET],
        CaseSchedule,
        sealer_of(vault, topology.SCHEDULES_BUCKET),
    )
    keep_reminders = reminders_keeper(reminders, policies, schedules, clock)
    return SchedulingDeps(
        settings_store=UnitOfWork(policies.store, clock, SOURCE, replies, events),
        schedules=UnitOfWork(schedules, clock, SOURCE, replies, events, keep_reminders),
        supervision=unit(topology.SUPERVISION_BUCKET, SupporterSupervision),
        groups=unit(topology.GROUPS_BUCKET, GroupSession),
        policies=policies,
        records=RecordReader(
            buckets[topology.SUPPORTERS_BUCKET], buckets[topology.CASES_BUCKET], vault
        ),
        decisions=DecisionReader(buckets[topology.DECISIONS_BUCKET], vault),
        asking=asking,
        settings=settings,
        clock=clock,
    )
