"""Wiring: matching's dependencies, every organisation's supporters indexed before it serves."""

from __future__ import annotations

from nats.aio.client import Client

from contracts.records import CaseMatch
from runtime import topology
from runtime.asking import Asking
from runtime.clock import Clock
from runtime.settings import Settings
from runtime.state import CaseloadStore, DecisionStore, RecordReader
from runtime.store import Changer, EventPublisher, RecordStore, ReplyStore
from services.matching.adapters import Supporters
from services.matching.handlers import SOURCE, MatchingDeps, holds_releaser


async def bootstrap(nc: Client, settings: Settings, clock: Clock) -> MatchingDeps:
    js = nc.jetstream()
    supporters_kv = await js.key_value(topology.SUPPORTERS_BUCKET)
    decisions_kv = await js.key_value(topology.DECISIONS_BUCKET)
    records = RecordReader(supporters_kv, await js.key_value(topology.CASES_BUCKET))
    decisions = DecisionStore(decisions_kv)
    caseloads = CaseloadStore(await js.key_value(topology.CASELOADS_BUCKET))
    supporters = Supporters(records, decisions, caseloads, clock)
    await supporters.load(supporters_kv, decisions_kv)
    matches = RecordStore(await js.key_value(topology.MATCHES_BUCKET), CaseMatch)
    replies = ReplyStore(await js.key_value(topology.REPLIES_BUCKET))
    events = EventPublisher(js)
    return MatchingDeps(
        matches=matches,
        caseloads=caseloads,
        supporters=supporters,
        records=records,
        decisions=decisions,
        replies=replies,
        events=events,
        changer=Changer(
            matches, replies, events, SOURCE, clock, holds_releaser(caseloads, matches)
        ),
        asking=Asking(nc, SOURCE, clock),
        settings=settings,
        clock=clock,
    )
