"""Wiring: build intake's dependencies from a live NATS connection."""

from __future__ import annotations

from nats.aio.client import Client

from contracts.records import CaseRecord, SchedulingSettings, SupporterRecord
from runtime import topology
from runtime.clock import Clock
from runtime.logging import get_logger
from runtime.registry import Registry
from runtime.settings import Settings
from runtime.state import Policies
from runtime.store import RecordStore
from runtime.unit import EventPublisher, ReplyStore, UnitOfWork
from runtime.vault import Vault, sealer_of
from services.intake.exports import Holdings
from services.intake.handlers import SOURCE, IntakeDeps, event_id_of, finish_outboxes

log = get_logger(__name__)


async def bootstrap(nc: Client, settings: Settings, clock: Clock) -> IntakeDeps:
    js = nc.jetstream()
    # Bind to buckets the topology provisioned; never declare them here.
    vault = Vault.of(js, settings)
    supporters = RecordStore(
        await js.key_value(topology.SUPPORTERS_BUCKET),
        SupporterRecord,
        sealer_of(vault, topology.SUPPORTERS_BUCKET),
    )
    cases = RecordStore(
        await js.key_value(topology.CASES_BUCKET),
        CaseRecord,
        sealer_of(vault, topology.CASES_BUCKET),
    )
    replies = ReplyStore(await js.key_value(topology.REPLIES_BUCKET))
    events = EventPublisher(js)
    deps = IntakeDeps(
        supporters=UnitOfWork(supporters, clock, SOURCE, replies, events, event_id=event_id_of),
        cases=UnitOfWork(cases, clock, SOURCE, replies, events, event_id=event_id_of),
        holdings=await Holdings.bind(js, cases, supporters, vault),
        events=events,
        vault=vault,
        registry=Registry(await js.key_value(topology.REGISTRY_BUCKET), clock),
        # Scheduling keeps each organisation's time zone with its policy; intake only reads.
        policies=Policies(
            RecordStore(await js.key_value(topology.ORGANISATIONS_BUCKET), SchedulingSettings)
        ),
        settings=settings,
        clock=clock,
    )
    # What a crash left between a commit and its announcement is finished first.
    finished = await finish_outboxes(deps)
    if finished:
        log.error("intake_outboxes_finished", count=finished)
    return deps
