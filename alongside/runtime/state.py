"""State several services read, in KV, keys led by the organisation.

- ``supporters`` and ``cases``: intake's records (``<org>.<id>``), read only here;
- ``decisions``: the rules service's latest decision per subject,
  ``<org>.<kind>.<subject_id>``, which it writes and others read.
"""

from __future__ import annotations

from typing import TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from alongside.runtime.store import Conflict
from contracts.records import CaseRecord, SupporterRecord
from contracts.rules import Kind, RulesDecision


async def keys(kv: KeyValue, pattern: str) -> list[str]:
    """Keys matching a subject-style ``pattern`` (``org.*``). nats-py's ``keys(filters=)``
    matches substrings and reads every key, so watch just the pattern instead."""
    watcher = await kv.watch(pattern, meta_only=True, ignore_deletes=True)
    keys = []
    try:
        async for entry in watcher:
            if entry is None:  # the end of the current values
                break
            keys.append(entry.key)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return keys


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
        self._supporters = supporters
        self._cases = cases

    async def supporter(self, org: str, supporter_id: str) -> SupporterRecord | None:
        return await _record(self._supporters, f"{org}.{supporter_id}", SupporterRecord)

    async def case(self, org: str, case_id: str) -> CaseRecord | None:
        return await _record(self._cases, f"{org}.{case_id}", CaseRecord)

    async def supporter_ids(self, org: str) -> list[str]:
        return [key.split(".", 1)[1] for key in await keys(self._supporters, f"{org}.*")]

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
    # Intake stores {"record": ..., "outbox": ...}; only the record matters here.
    return model.model_validate(_Stored.model_validate_json(entry.value).record)
