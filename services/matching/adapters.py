"""Where matching keeps and reads things.

- ``matches``: each case's matching state with its outbox (``runtime.store``);
- ``caseloads`` (``CaseloadStore``): who holds each supporter's slots, changed only by
  compare-and-set, so two replicas never overfill a supporter (eligibility reads them
  through ``runtime.state.CaseloadReader``);
- ``Supporters``: each organisation's supporters as a ``LiveIndex``, built from the
  ``supporters``, ``decisions`` and ``caseloads`` buckets by watching them: the watch
  first delivers every stored value (the rebuild at start), then every change.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from nats.js.kv import KeyValue

from contracts.records import Caseload, CaseMatch, SupporterRecord
from contracts.rules import Kind, RulesDecision
from runtime.changes import Change
from runtime.clock import Clock
from runtime.logging import get_logger
from runtime.state import CaseloadReader, DecisionReader, RecordReader
from runtime.store import PlainStore, RecordStore, Stored
from runtime.unit import UnitOfWork
from services.matching.domain import LiveIndex, SupporterRow, normalise
from services.matching.figures import Standing

log = get_logger(__name__)

Apply = Callable[[str, str, bytes | None, int], Awaitable[None]]
# Many replicas and many clients contend for one supporter's slots at busy moments.
CASELOAD_CONFLICT_RETRIES = 20


class CaseloadStore(CaseloadReader):
    def __init__(self, kv: KeyValue, clock: Clock, source: str) -> None:
        super().__init__(kv)
        # A caseload change announces nothing: one write, no outbox.
        self.unit = UnitOfWork(
            PlainStore(kv, Caseload), clock, source, conflict_retries=CASELOAD_CONFLICT_RETRIES
        )
        # Told of every caseload as written or found here (the index), before any watch is.
        self.observers: list[Callable[[str, str, Caseload, int], None]] = []

    async def _change(
        self, org: str, supporter_id: str, change: Callable[[Caseload], Caseload | None]
    ) -> tuple[Caseload | None, Caseload, int]:
        """Apply ``change`` through the unit of work: its result (``None``: refused, left as
        is), the caseload as it now stands and its revision."""
        result: list[Caseload | None] = [None]

        def decide(current: Caseload | None, _: None) -> Change[Caseload] | None:
            caseload = current or Caseload(supporter_id=supporter_id)
            result[0] = new = change(caseload)
            return None if new is None or new == caseload else Change(new)

        outcome = await self.unit.change(org, supporter_id, decide)
        now_stands = outcome.record or Caseload(supporter_id=supporter_id)
        self._tell(org, supporter_id, now_stands, outcome.revision)
        return result[0], now_stands, outcome.revision

    async def hold(
        self,
        org: str,
        supporter_id: str,
        case_id: str,
        until: datetime | None,
        cap: int,
        now: datetime,
    ) -> bool:
        """Hold one of the supporter's slots for the case (``until`` None: for good); False
        when every slot is taken by other cases. A case already holding one just changes
        its term."""
        held, _, _, _ = await self.hold_each(org, supporter_id, {case_id: until}, cap, now)
        return case_id in held

    async def hold_each(
        self,
        org: str,
        supporter_id: str,
        wanted: Mapping[str, datetime | None],
        cap: int,
        now: datetime,
    ) -> tuple[set[str], Caseload | None, Caseload, int]:
        """``hold`` for several cases in one write: a slot for each case of ``wanted`` (case
        -> until), in its order, while slots last. The cases that hold a slot, the caseload
        written (None when none was held), and the caseload as it now stands with its
        revision (what the index learns)."""
        held: set[str] = set()

        def change(caseload: Caseload) -> Caseload | None:
            held.clear()
            holds = {c: u for c, u in caseload.holds.items() if u is None or u > now}
            for case_id, until in wanted.items():
                if case_id in holds or len(holds) < cap:
                    holds[case_id] = until
                    held.add(case_id)
            return caseload.model_copy(update={"holds": holds}) if held else None

        written, now_stands, revision = await self._change(org, supporter_id, change)
        return held, written, now_stands, revision

    def _tell(self, org: str, supporter_id: str, caseload: Caseload, revision: int) -> None:
        for observer in self.observers:
            observer(org, supporter_id, caseload, revision)

    async def release(self, org: str, supporter_id: str, case_id: str) -> tuple[Caseload, int]:
        """Give up the case's slot; the caseload as it now stands, and its revision."""

        def change(caseload: Caseload) -> Caseload:
            holds = {c: u for c, u in caseload.holds.items() if c != case_id}
            return caseload.model_copy(update={"holds": holds})

        _, now_stands, revision = await self._change(org, supporter_id, change)
        return now_stands, revision


@dataclass
class _Parts:
    """What the index needs of one supporter, from three buckets that change separately."""

    record: SupporterRecord | None = None
    eligible: bool = False
    caseload: Caseload | None = None
    # The revisions last taken in: a watch that lags behind a read made here (a refresh, a
    # hold) must not put an older caseload or decision back.
    decision_revision: int = 0
    caseload_revision: int = 0


@dataclass
class Supporters:
    """Every organisation's ``LiveIndex``, and the parts each row is made of."""

    records: RecordReader
    decisions: DecisionReader
    caseloads: CaseloadStore
    clock: Callable[[], datetime]
    parts: dict[str, dict[str, _Parts]] = field(default_factory=lambda: defaultdict(dict))
    indexes: dict[str, LiveIndex] = field(default_factory=lambda: defaultdict(LiveIndex))
    _watchers: list[tuple[KeyValue.KeyWatcher, Apply]] = field(default_factory=list)

    def index(self, org: str) -> LiveIndex:
        return self.indexes[org]

    def cap(self, org: str, supporter_id: str) -> int:
        record = self.parts[org].get(supporter_id, _Parts()).record
        return record.profile.caseload_cap if record else 0

    def _update(self, org: str, supporter_id: str, **changes: object) -> None:
        parts = self.parts[org].setdefault(supporter_id, _Parts())
        for part in ("decision", "caseload"):
            revision = changes.get(f"{part}_revision")
            if isinstance(revision, int) and 0 < revision < getattr(parts, f"{part}_revision"):
                # Older than what was taken in already: keep the newer part.
                changes.pop(f"{part}_revision")
                changes.pop("eligible" if part == "decision" else "caseload", None)
        for name, value in changes.items():
            setattr(parts, name, value)
        if parts.record is None:
            return  # a caseload or decision seen before its supporter: wait for the record
        self.indexes[org].put(_row(parts.record, parts.eligible, parts.caseload, self.clock()))

    async def refresh(self, org: str, supporter_id: str) -> None:
        """Read one supporter's parts now (an event may arrive before its watch update)."""
        record = await self.records.supporter(org, supporter_id)
        decision, decided = await self.decisions.get(org, Kind.ELIGIBILITY, supporter_id)
        caseload, revision = await self.caseloads.load(org, supporter_id)
        self._update(
            org,
            supporter_id,
            record=record,
            eligible=_eligible(decision),
            decision_revision=decided,
            caseload=caseload,
            caseload_revision=revision,
        )

    def caseload_seen(self, org: str, supporter_id: str, caseload: Caseload, revision: int) -> None:
        """A caseload as read or written here just now: the index knows it at once."""
        self._update(org, supporter_id, caseload=caseload, caseload_revision=revision)

    async def load(self, supporters: KeyValue, decisions: KeyValue) -> None:
        """Start watching the three buckets and take in every stored value (the rebuild)."""
        sources = (
            (supporters, ">", self._on_record),
            (decisions, f"*.{Kind.ELIGIBILITY.value}.*", self._on_decision),
            (self.caseloads.kv, ">", self._on_caseload),
        )
        self._watchers = [(await kv.watch(pattern), apply) for kv, pattern, apply in sources]
        for watcher, apply in self._watchers:
            while (entry := await watcher.updates(timeout=60)) is not None:  # type: ignore[no-untyped-call]
                await self._apply(entry, apply)

    async def follow(self) -> None:
        """Keep taking in every change, for as long as the service runs."""

        async def one(watcher: KeyValue.KeyWatcher, apply: Apply) -> None:
            async for entry in watcher:
                if entry is not None:
                    await self._apply(entry, apply)

        await asyncio.gather(*(one(watcher, apply) for watcher, apply in self._watchers))

    @staticmethod
    async def _apply(entry: KeyValue.Entry, apply: Apply) -> None:
        org, _, rest = entry.key.partition(".")
        try:
            await apply(org, rest.rsplit(".", 1)[-1], entry.value or None, entry.revision or 0)
        except Exception as error:  # one bad value never stops the index
            # The type only: a validation error's text would quote the record's contents.
            log.error("index_update_failed", key=entry.key, error=type(error).__name__)

    def forget(self, org: str, supporter_id: str) -> None:
        """The supporter is gone (erased): never proposed again."""
        self.indexes[org].remove(supporter_id)
        self.parts[org].pop(supporter_id, None)

    async def _on_record(self, org: str, supporter_id: str, value: bytes | None, _: int) -> None:
        record = await self.records.supporter_from(org, supporter_id, value) if value else None
        if record is None:
            self.forget(org, supporter_id)
        else:
            self._update(org, supporter_id, record=record)

    async def _on_decision(
        self, org: str, supporter_id: str, value: bytes | None, revision: int
    ) -> None:
        decision = (await self.decisions.parse(org, value)).decision if value else None
        self._update(org, supporter_id, eligible=_eligible(decision), decision_revision=revision)

    async def _on_caseload(
        self, org: str, supporter_id: str, value: bytes | None, revision: int
    ) -> None:
        caseload = Caseload.model_validate_json(value) if value else None
        self._update(org, supporter_id, caseload=caseload, caseload_revision=revision)


def _eligible(decision: RulesDecision | None) -> bool:
    return decision is not None and decision.outcome == "eligible"


def _row(
    record: SupporterRecord, eligible: bool, caseload: Caseload | None, now: datetime
) -> SupporterRow:
    profile = record.profile
    taken = caseload.taken(now) if caseload else 0
    return SupporterRow(
        supporter_id=record.supporter_id,
        eligible=eligible and not record.suspended,
        free_slots=max(profile.caseload_cap - taken, 0),
        languages=frozenset(profile.languages),
        lived_experience=frozenset(profile.lived_experience),
        cultural_background=frozenset(profile.cultural_background),
        methods=frozenset(m.value for m in profile.methods),
        gender_identity=profile.gender_identity,
        region=profile.region,
        youth_cleared=profile.youth_cleared,
        affiliations=frozenset(normalise(a.name) for a in profile.affiliations),
    )


async def match_records(
    matches: RecordStore[CaseMatch], org: str = "*"
) -> list[tuple[str, Stored[CaseMatch], int]]:
    """Every case's matching state in one organisation (or all), with its org and revision."""
    return [
        (record_org, stored, revision)
        for record_org, _, stored, revision in await matches.each(org)
    ]


class Standings:
    """Each case's ``Standing``, kept by watching the ``matches`` bucket (the first values
    the watch gives are every stored one): matching's figures are counted from these every
    ``figures_interval_s``, where reading every record again grew with every case kept."""

    def __init__(self) -> None:
        self.cases: dict[tuple[str, str], Standing] = {}  # (org, case id) -> standing
        # Each organisation's waitlisted cases, kept with ``cases``: asked on every offer.
        self._waiting: dict[str, set[str]] = defaultdict(set)
        self._watcher: KeyValue.KeyWatcher | None = None

    async def load(self, matches: KeyValue) -> None:
        self._watcher = await matches.watch(">")
        while (entry := await self._watcher.updates(timeout=60)) is not None:  # type: ignore[no-untyped-call]
            self._apply(entry)

    async def follow(self) -> None:
        """Keep taking in every change, for as long as the service runs."""
        assert self._watcher is not None, "load first"
        async for entry in self._watcher:
            if entry is not None:
                self._apply(entry)

    def note(self, org: str, case_id: str, match: CaseMatch) -> None:
        """A record as this process just committed it."""
        self._put(org, case_id, Standing.of(match))

    def _put(self, org: str, case_id: str, standing: Standing | None) -> None:
        if standing is None:
            self.cases.pop((org, case_id), None)
        else:
            self.cases[(org, case_id)] = standing
        if standing is not None and standing.status == "waitlisted":
            self._waiting[org].add(case_id)
        else:
            self._waiting[org].discard(case_id)

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    def waiting(self, org: str) -> list[str]:
        """The organisation's waitlisted cases, as the watch and this process's commits have
        told so far."""
        return sorted(self._waiting[org])

    def anyone_waiting(self, org: str) -> bool:
        return bool(self._waiting[org])

    def _apply(self, entry: KeyValue.Entry) -> None:
        org, _, case_id = entry.key.partition(".")
        if not entry.value:  # deleted (an erased client)
            self._put(org, case_id, None)
            return
        try:
            self._put(org, case_id, Standing.of_stored(json.loads(entry.value)["record"]))
        except Exception as error:  # one bad value never stops the figures
            log.error("standing_update_failed", key=entry.key, error=type(error).__name__)
