"""The commit idiom over the in-memory KV: conflicts retried with backoff, then Contended."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nats.js.errors import KeyWrongLastSequenceError

from contracts.records import CaseMatch
from runtime.changes import Change, Contended, NotYet
from runtime.clock import ManualClock
from runtime.store import Changer, RecordStore, ReplyStore
from tests.fakes import FakeKeyValue, FakePublisher

NOW = datetime(2027, 3, 3, 9, tzinfo=UTC)


class AlwaysBusy(FakeKeyValue):
    """Someone else always writes first."""

    async def update(self, key: str, value: bytes, last: int) -> int:
        raise KeyWrongLastSequenceError


async def test_a_record_that_keeps_changing_is_looked_at_again_later_not_failed() -> None:
    kv = AlwaysBusy()
    matches = RecordStore(kv.as_kv(), CaseMatch)
    first = CaseMatch(case_id="c1", status="waitlisted", since=NOW, updated_at=NOW)
    await matches.save("o", "c1", matches.stored(first), 0)
    changer = Changer(matches, ReplyStore(FakeKeyValue().as_kv()), FakePublisher(), "test",
                      ManualClock(NOW))  # fmt: skip
    decided = 0

    async def decide(match: CaseMatch | None) -> Change[CaseMatch]:
        nonlocal decided
        decided += 1
        assert match is not None
        return Change(match.model_copy(update={"round": match.round + 1}), [])

    with pytest.raises(Contended) as busy:
        await changer.change("o", "c1", decide)

    assert isinstance(busy.value, NotYet)  # the consumer redelivers it later, no traceback
    assert decided == 10  # decided again on each retry, never committed on stale state
    stored, _ = await matches.load("o", "c1")
    assert stored is not None
    assert stored.record == first
