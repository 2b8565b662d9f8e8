"""State several services read, in KV, keys led by the organisation.

- ``supporters`` and ``cases``: intake's records (``<org>.<id>``), read only here;
- ``decisions``: the rules service's latest decision per subject,
  ``<org>.<kind>.<subject_id>``, which it writes and others read;
- ``caseloads``: who holds each supporter's slots (``<org>.<supporter_id>``), which
  matching writes and eligibility reads;
- ``organisations``: each organisation's scheduling policy (``<org>.scheduling``), its
  time zone included, which scheduling writes and every service's "today" depends on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from contracts.records import Caseload, CaseRecord, SchedulingSettings, SupporterRecord
from contracts.rules import Kind, RulesDecision
from contracts.scheduling import SchedulingPolicy
from runtime.store import Conflict, RecordStore, keys


class DecisionStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, org: str, kind: Kind, subject_id: str) -> tuple[RulesDecision | None, int]:
        try:
            entry = await self._kv.get(f"{org}.{kind.value}.{subject_id}")
        except KeyNotFoundError:
            return None, 0
        assert entry.value is not None
        assert entry.revision is not None
        return RulesDecision.model_validate_json(entry.value), entry.revision

    async def put(self, org: str, decision: RulesDecision, revision: int) -> None:
        key = f"{org}.{decision.kind.value}.{decision.subject_id}"
        value = decision.model_dump_json().encode()
        try:
            if revision == 0:
                await self._kv.create(key, value)
            else:
                await self._kv.update(key, value, last=revision)
        except KeyWrongLastSequenceError as error:
            raise Conflict(key) from error

    async def subjects(self, kind: Kind) -> list[tuple[str, str]]:
        """(org, subject_id) of every stored decision of one kind, across organisations."""
        found = await keys(self._kv, f"*.{kind.value}.*")
        return [(org, subject) for org, _, subject in (key.split(".", 2) for key in found)]


class RecordReader:
    def __init__(self, supporters: KeyValue, cases: KeyValue) -> None:
        self.supporters = supporters
        self._cases = cases

    @staticmethod
    def parse_supporter(value: bytes) -> SupporterRecord:
        return _parse(value, SupporterRecord)

    async def supporter(self, org: str, supporter_id: str) -> SupporterRecord | None:
        return await _record(self.supporters, f"{org}.{supporter_id}", SupporterRecord)

    async def case(self, org: str, case_id: str) -> CaseRecord | None:
        return await _record(self._cases, f"{org}.{case_id}", CaseRecord)

    async def supporter_ids(self, org: str) -> list[str]:
        return [key.split(".", 1)[1] for key in await keys(self.supporters, f"{org}.*")]

    async def case_ids(self, org: str) -> list[str]:
        return [key.split(".", 1)[1] for key in await keys(self._cases, f"{org}.*")]


class _Stored(BaseModel):
    record: dict[str, object]


T = TypeVar("T", bound=BaseModel)


async def _record(kv: KeyValue, key: str, model: type[T]) -> T | None:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    assert entry.value is not None
    return _parse(entry.value, model)


def _parse(value: bytes, model: type[T]) -> T:
    # Intake stores {"record": ..., "outbox": ...}; only the record matters here.
    return model.model_validate(_Stored.model_validate_json(value).record)


MAX_CONFLICT_RETRIES = 20


class CaseloadStore:
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

    async def _change(
        self, org: str, supporter_id: str, change: Callable[[Caseload], Caseload | None]
    ) -> Caseload | None:
        """Apply ``change`` by compare-and-set and return the result; ``None`` from ``change``
        means: refused, leave as is."""
        for _ in range(MAX_CONFLICT_RETRIES):
            caseload, revision = await self.load(org, supporter_id)
            new = change(caseload)
            if new is None or new == caseload:
                return new
            value = new.model_dump_json().encode()
            try:
                if revision == 0:
                    await self.kv.create(f"{org}.{supporter_id}", value)
                else:
                    await self.kv.update(f"{org}.{supporter_id}", value, last=revision)
                return new
            except KeyWrongLastSequenceError:
                continue
        raise RuntimeError(f"caseload {org}.{supporter_id} kept changing; try again")

    async def hold(
        self, org: str, supporter_id: str, case_id: str, until: datetime | None, cap: int,
        now: datetime,
    ) -> Caseload | None:  # fmt: skip
        """Hold one of the supporter's slots for the case (``until`` None: for good) and return
        the caseload as it now stands; None when every slot is taken by other cases. A case
        already holding one just changes its term."""

        def change(caseload: Caseload) -> Caseload | None:
            if case_id not in caseload.holds and caseload.taken(now) >= cap:
                return None
            # Expired holds are dropped on the way: they no longer take a slot.
            holds = {c: u for c, u in caseload.holds.items() if u is None or u > now}
            return caseload.model_copy(update={"holds": {**holds, case_id: until}})

        return await self._change(org, supporter_id, change)

    async def release(self, org: str, supporter_id: str, case_id: str) -> None:
        def change(caseload: Caseload) -> Caseload:
            holds = {c: u for c, u in caseload.holds.items() if c != case_id}
            return caseload.model_copy(update={"holds": holds})

        await self._change(org, supporter_id, change)

    async def active_cases(self, org: str, supporter_id: str) -> int:
        caseload, _ = await self.load(org, supporter_id)
        return caseload.active_cases


SETTINGS_KEY = "scheduling"


class Policies:
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
