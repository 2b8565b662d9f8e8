"""Wiring: matching's dependencies, every organisation's supporters indexed before it serves."""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.client import Client
from nats.js.kv import KeyValue

from contracts.matching import SERVICE
from contracts.records import CaseMatch
from runtime import topology
from runtime.asking import Asking
from runtime.clock import Clock
from runtime.settings import Settings
from runtime.state import DecisionReader, RecordReader
from runtime.store import RecordStore
from runtime.unit import EventPublisher, ReplyStore, UnitOfWork
from runtime.vault import Vault, sealer_of
from services.matching.adapters import CaseloadStore, Standings, Supporters
from services.matching.deps import MatchingDeps
from services.matching.handlers import SOURCE
from services.matching.offering import holds_releaser
from services.matching.turns import Turns

BUCKETS = (
    topology.SUPPORTERS_BUCKET,
    topology.DECISIONS_BUCKET,
    topology.CASES_BUCKET,
    topology.CASELOADS_BUCKET,
    topology.MATCHES_BUCKET,
    topology.REPLIES_BUCKET,
)


async def bootstrap(nc: Client, settings: Settings, clock: Clock) -> MatchingDeps:
    """Bind to the buckets the topology provisioned, wire, then build the supporter index
    from what the buckets hold (the watch that keeps it current starts here too)."""
    js = nc.jetstream()
    buckets = {name: await js.key_value(name) for name in BUCKETS}
    deps = wire(
        buckets,
        EventPublisher(js),
        Asking(nc, SOURCE, clock, SERVICE),
        settings,
        clock,
        Vault.of(js, settings),
    )
    await deps.supporters.load(
        buckets[topology.SUPPORTERS_BUCKET], buckets[topology.DECISIONS_BUCKET]
    )
    await deps.standings.load(buckets[topology.MATCHES_BUCKET])
    return deps


def wire(
    buckets: Mapping[str, KeyValue],
    events: EventPublisher,
    asking: Asking,
    settings: Settings,
    clock: Clock,
    vault: Vault,
) -> MatchingDeps:
    """Matching's dependencies from its adapters: NATS in production, fakes in the tests."""
    records = RecordReader(
        buckets[topology.SUPPORTERS_BUCKET], buckets[topology.CASES_BUCKET], vault
    )
    decisions = DecisionReader(buckets[topology.DECISIONS_BUCKET], vault)
    caseloads = CaseloadStore(buckets[topology.CASELOADS_BUCKET], clock, SOURCE)
    matches = RecordStore(
        buckets[topology.MATCHES_BUCKET], CaseMatch, sealer_of(vault, topology.MATCHES_BUCKET)
    )
    replies = ReplyStore(buckets[topology.REPLIES_BUCKET])
    supporters = Supporters(records, decisions, caseloads, clock)
    caseloads.observers.append(supporters.caseload_seen)
    turns = Turns()
    return MatchingDeps(
        matches=matches,
        caseloads=caseloads,
        supporters=supporters,
        standings=Standings(),
        records=records,
        decisions=decisions,
        replies=replies,
        events=events,
        unit=UnitOfWork(
            matches, clock, SOURCE, replies, events, holds_releaser(caseloads, matches, turns)
        ),
        asking=asking,
        settings=settings,
        clock=clock,
        turns=turns,
    )
