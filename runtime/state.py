"""State one service owns and others read, in KV, keys led by the organisation.

Only the reading side lives here; each owner writes through the store in its own
adapters:

- ``supporters`` and ``cases``: intake's records (``<org>.<id>``);
- ``decisions``: the rules service's latest decision per subject,
  ``<org>.<kind>.<subject_id>`` (written by ``services/rules/adapters.DecisionStore``);
- ``caseloads``: who holds each supporter's slots (``<org>.<supporter_id>``; written by
  ``services/matching/adapters.CaseloadStore``), which eligibility reads;
- ``organisations``: each organisation's scheduling policy (``<org>.scheduling``), its
  time zone included, which scheduling writes and every service's "today" depends on.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from contracts import subjects
from contracts.records import Caseload, CaseRecord, SchedulingSettings, SupporterRecord
from contracts.rules import Kind, LoggedDecision, RulesDecision
from contracts.scheduling import SchedulingPolicy
from runtime import bus, topology
from runtime.changes import NotYet
from runtime.store import RecordStore, keys
from runtime.vault import DecisionSealer, Vault, sealer_of


class StoredDecision(BaseModel):
    """A decision as the rules service keeps it: with its decision log entry and the
    announcement of it (a serialized event envelope) while those are still to be
    published. Stored first, logged and announced second, so a consumer woken by the event
    always reads the decision it announces, and a crash in between loses neither."""

    decision: RulesDecision
    announce: str | None = None
    # Its decision log entry (a serialized LoggedDecision), while that is still to be written.
    log: str | None = None

    @property
    def unpublished(self) -> bool:
        return self.announce is not None or self.log is not None


async def each_decision(
    raw: dict[str, Any], change: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """A stored decision (as JSON data) with ``change`` (sealing or opening) applied to its
    decision and to the one in its log entry, if it keeps one."""
    raw["decision"] = await change(raw["decision"])
    if raw.get("log"):
        logged = json.loads(raw["log"])
        logged["decision"] = await change(logged["decision"])
        raw["log"] = json.dumps(logged, separators=(",", ":"), ensure_ascii=False)
    return raw


class DecisionReader:
    """The rules service's latest decisions, their fired rules opened
    (``runtime.vault.DecisionSealer``)."""

    def __init__(self, kv: KeyValue, vault: Vault) -> None:
        self._kv = kv
        self.sealer = DecisionSealer(vault)

    async def parse(self, org: str, value: bytes) -> StoredDecision:
        """A stored value; one written before announcements were kept with decisions is the
        bare decision."""
        raw = json.loads(value)
        raw = raw if "decision" in raw else {"decision": raw}
        opened = await each_decision(raw, partial(self.sealer.open, org))
        return StoredDecision.model_validate(opened)

    async def load(
        self, org: str, kind: Kind, subject_id: str
    ) -> tuple[StoredDecision | None, int]:
        try:
            entry = await self._kv.get(f"{org}.{kind.value}.{subject_id}")
        except KeyNotFoundError:
            return None, 0
        assert entry.value is not None
        assert entry.revision is not None
        return await self.parse(org, entry.value), entry.revision

    async def get(self, org: str, kind: Kind, subject_id: str) -> tuple[RulesDecision | None, int]:
        stored, revision = await self.load(org, kind, subject_id)
        return (stored.decision if stored else None), revision

    async def announced(
        self, org: str, kind: Kind, subject_id: str, announced_at: datetime
    ) -> RulesDecision:
        """The decision an event announced at ``announced_at`` (or a later one): what a
        consumer acts on, rather than the event's copy. ``NotYet`` when none so recent is
        readable (a write on its way, or an event no decision stands behind)."""
        decision, _ = await self.get(org, kind, subject_id)
        if decision is None or decision.decided_at < announced_at:
            raise NotYet(f"no {kind.value} decision on {subject_id} as of {announced_at}")
        return decision

    async def subjects(self, kind: Kind) -> list[tuple[str, str]]:
        """(org, subject_id) of every stored decision of one kind, across organisations."""
        found = await keys(self._kv, f"*.{kind.value}.*")
        return [(org, subject) for org, _, subject in (key.split(".", 2) for key in found)]


class RecordReader:
    """Intake's records as the other services read them, their sealed fields opened. A record
    of someone erased raises ``Erased`` (gone for good), where one not written yet is None."""

    def __init__(self, supporters: KeyValue, cases: KeyValue, vault: Vault) -> None:
        self.supporters = supporters
        self._cases = cases
        self._vault = vault
        self._supporter_store = RecordStore(
            supporters, SupporterRecord, sealer_of(vault, topology.SUPPORTERS_BUCKET)
        )
        self._case_store = RecordStore(cases, CaseRecord, sealer_of(vault, topology.CASES_BUCKET))

    async def supporter_from(self, org: str, supporter_id: str, value: bytes) -> SupporterRecord:
        """A supporter record as stored (a value from a watch of the bucket)."""
        return (await self._supporter_store.parse(org, supporter_id, value)).record

    async def supporter(self, org: str, supporter_id: str) -> SupporterRecord | None:
        stored, _ = await self._supporter_store.load(org, supporter_id)
        if stored is None:
            await self._vault.key(org, "supporter", supporter_id)  # Erased, if they were
            return None
        return stored.record

    async def case(self, org: str, case_id: str) -> CaseRecord | None:
        stored, _ = await self._case_store.load(org, case_id)
        if stored is None:
            await self._vault.key(org, "client", case_id)  # Erased, if they were
            return None
        return stored.record

    async def supporter_ids(self, org: str) -> list[str]:
        return [key.split(".", 1)[1] for key in await keys(self.supporters, f"{org}.*")]

    async def case_ids(self, org: str) -> list[str]:
        return [key.split(".", 1)[1] for key in await keys(self._cases, f"{org}.*")]

    async def every_case(self) -> list[tuple[str, str]]:
        """(org, case_id) of every case, across organisations."""
        return [
            (org, case_id)
            for org, case_id in (key.split(".", 1) for key in await keys(self._cases, "*.*"))
        ]


class CaseloadReader:
    """Who holds each supporter's slots (matching's ``CaseloadStore`` writes them)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def load(self, org: str, supporter_id: str) -> tuple[Caseload, int]:
        try:
            entry = await self.kv.get(f"{org}.{supporter_id}")
        except KeyNotFoundError:
            return Caseload(supporter_id=supporter_id), 0
        assert entry.value is not None
        assert entry.revision is not None
        return Caseload.model_validate_json(entry.value), entry.revision

    async def active_cases(self, org: str, supporter_id: str) -> int:
        caseload, _ = await self.load(org, supporter_id)
        return caseload.active_cases


SETTINGS_KEY = "scheduling"


class Policies:
    """Each organisation's scheduling policy (scheduling writes it through ``store``)."""

    def __init__(self, store: RecordStore[SchedulingSettings]) -> None:
        self.store = store

    async def get(self, org: str) -> SchedulingPolicy:
        """The organisation's policy, or the defaults until it configured one."""
        stored, _ = await self.store.load(org, SETTINGS_KEY)
        return stored.record.policy if stored else SchedulingPolicy()

    async def today(self, org: str, now: datetime) -> date:
        """The date it is now where the organisation works."""
        policy = await self.get(org)
        return now.astimezone(ZoneInfo(policy.time_zone)).date()


class DecisionLogReader:
    """The decision log (stream ``DECISIONLOG``): every decision with why, one message each
    on ``alongside.<org>.decisionlog.<kind>.<subject>.<decision_id>``, its fired rules
    sealed as in the ``decisions`` bucket. Operators read it (``alongside rules explain``),
    and intake, for a subject access request; the rules service writes it."""

    def __init__(self, js: JetStreamContext, vault: Vault) -> None:
        self.js = js
        self.sealer = DecisionSealer(vault)

    async def find(self, org: str, decision_id: str) -> LoggedDecision | None:
        found = await self._read(subjects.decision_logs(org, decision_id=decision_id))
        return found[-1] if found else None

    async def of_subject(self, org: str, subject_id: str) -> list[LoggedDecision]:
        """A subject's decisions of every kind, oldest first."""
        return await self._read(subjects.decision_logs(org, subject_id=subject_id))

    async def _read(self, subject: str) -> list[LoggedDecision]:
        found: list[LoggedDecision] = []
        for msg in await bus.every_message(self.js, topology.DECISION_LOG_STREAM, subject):
            raw = json.loads(msg.data)
            raw["decision"] = await self.sealer.open(raw["org"], raw["decision"])
            found.append(LoggedDecision.model_validate(raw))
        return found
