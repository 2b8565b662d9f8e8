"""What matching's handlers work with: its stores, readers and clock, and whose turn it is."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.records import CaseMatch
from runtime.asking import Asking
from runtime.clock import Clock
from runtime.settings import Settings
from runtime.state import DecisionReader, RecordReader
from runtime.store import RecordStore
from runtime.unit import EventPublisher, ReplyStore, UnitOfWork
from services.matching.adapters import CaseloadStore, Standings, Supporters
from services.matching.turns import Turns


@dataclass(frozen=True)
class MatchingDeps:
    matches: RecordStore[CaseMatch]
    caseloads: CaseloadStore
    supporters: Supporters
    standings: Standings
    records: RecordReader
    decisions: DecisionReader
    replies: ReplyStore
    events: EventPublisher
    unit: UnitOfWork[CaseMatch]
    asking: Asking
    settings: Settings
    clock: Clock
    turns: Turns = field(default_factory=lambda: Turns())
