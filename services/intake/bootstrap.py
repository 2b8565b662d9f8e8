"""Wiring: build intake's dependencies from a live NATS connection."""

from __future__ import annotations

from nats.aio.client import Client

from alongside.runtime import topology
from alongside.runtime.store import EventPublisher, RecordStore, ReplyStore
from alongside.settings import Settings
from contracts.envelope import now
from contracts.records import CaseRecord, SupporterRecord
from services.intake.handlers import IntakeDeps


async def bootstrap(nc: Client, settings: Settings) -> IntakeDeps:
    js = nc.jetstream()
    # Bind to buckets the topology provisioned; never declare them here.
    supporters = await js.key_value(topology.SUPPORTERS_BUCKET)
    cases = await js.key_value(topology.CASES_BUCKET)
    replies = await js.key_value(topology.REPLIES_BUCKET)
    return IntakeDeps(
        js=js,
        supporters=RecordStore(supporters, SupporterRecord),
        cases=RecordStore(cases, CaseRecord),
        replies=ReplyStore(replies),
        events=EventPublisher(js),
        clock=now,
    )
