"""The unit of work over the in-memory KV: conflicts retried with backoff, then Contended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nats.js.errors import KeyWrongLastSequenceError

from contracts.intake import GiveConsent, Stage
from contracts.matching import ClientWaitlisted
from contracts.records import CaseMatch
from contracts.replies import CommandAccepted
from runtime.changes import Change, Contended, NotYet, Refused
from runtime.clock import ManualClock
from runtime.store import RecordStore
from runtime.unit import Reply, ReplyStore, StoredReply, UnitOfWork, fingerprint
from tests.fakes import FakeKeyValue, FakePublisher, received

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
    unit = UnitOfWork(
        matches, ManualClock(NOW), "test", ReplyStore(FakeKeyValue().as_kv()), FakePublisher()
    )
    decided = 0

    def decide(match: CaseMatch | None, _: None) -> Change[CaseMatch]:
        nonlocal decided
        decided += 1
        assert match is not None
        return Change(match.model_copy(update={"round": match.round + 1}), [])

    with pytest.raises(Contended) as busy:
        await unit.change("o", "c1", decide)

    assert isinstance(busy.value, NotYet)  # the consumer redelivers it later, no traceback
    assert decided == 10  # decided again on each retry, never committed on stale state
    stored, _ = await matches.load("o", "c1")
    assert stored is not None
    assert stored.record == first


async def test_a_command_whose_record_keeps_changing_is_not_refused_but_sent_again() -> None:
    # It used to be answered "rejected: too many concurrent changes; retry".
    kv = AlwaysBusy()
    matches = RecordStore(kv.as_kv(), CaseMatch)
    first = CaseMatch(case_id="c1", status="waitlisted", since=NOW, updated_at=NOW)
    await matches.save("org-1", "c1", matches.stored(first), 0)
    replies = ReplyStore(FakeKeyValue().as_kv())
    unit = UnitOfWork(matches, ManualClock(NOW), "test", replies, FakePublisher())
    command = received(
        GiveConsent(case_id="c1", party_id="client", stages=[Stage.ENTRY], given_on=NOW.date())
    )

    def decide(match: CaseMatch | None, _: None) -> Change[CaseMatch]:
        assert match is not None
        return Change(match.model_copy(update={"round": match.round + 1}), [])

    with pytest.raises(Contended):  # answered CommandUnavailable by commands.serve
        await unit.change("org-1", "c1", decide, command=command)
    # The id is claimed for this command, unanswered: the same command sent again goes on.
    assert await replies.get("org-1", command.envelope.id) == StoredReply(
        fingerprint=fingerprint(command.command)
    )
    assert await replies.claim(command, fingerprint(command.command)) is None


class FailingPublisher(FakePublisher):
    """JetStream without a stream leader: every publish fails."""

    down = True

    async def publish(self, serialized_envelopes: list[str]) -> None:
        if self.down:
            raise TimeoutError("no stream leader")
        await super().publish(serialized_envelopes)


async def test_a_reply_is_kept_only_once_its_events_are_published() -> None:
    # A retry used to get the kept reply ("accepted") while the events were never published.
    publisher = FailingPublisher()
    matches = RecordStore(FakeKeyValue().as_kv(), CaseMatch)
    clock = ManualClock(NOW)
    replies = ReplyStore(FakeKeyValue().as_kv())
    unit = UnitOfWork(matches, clock, "test", replies, publisher)
    command = received(
        GiveConsent(case_id="c1", party_id="client", stages=[Stage.ENTRY], given_on=NOW.date())
    )

    def decide(match: CaseMatch | None, _: None) -> Change[CaseMatch]:
        opened = CaseMatch(case_id="c1", status="waitlisted", since=NOW, updated_at=NOW)
        return Change(
            opened,
            [ClientWaitlisted(case_id="c1", constraint="no-free-supporter", reason="none free")],
        )

    with pytest.raises(TimeoutError):
        await unit.change("org-1", "c1", decide, command=command)
    assert publisher.published == []
    assert await replies.get("org-1", command.envelope.id) == StoredReply(
        fingerprint=fingerprint(command.command)
    )  # claimed, not answered

    publisher.down = False
    reply = (await unit.change("org-1", "c1", decide, command=command)).reply  # a retry
    assert isinstance(reply, CommandAccepted)
    assert [e.id for e in publisher.published] == reply.event_ids


async def test_the_sweep_leaves_an_outbox_younger_than_the_settle_time_to_its_handler() -> None:
    publisher = FailingPublisher()
    matches = RecordStore(FakeKeyValue().as_kv(), CaseMatch)
    clock = ManualClock(NOW)
    unit = UnitOfWork(matches, clock, "test", ReplyStore(FakeKeyValue().as_kv()), publisher)

    def decide(match: CaseMatch | None, _: None) -> Change[CaseMatch]:
        opened = CaseMatch(case_id="c1", status="waitlisted", since=NOW, updated_at=NOW)
        return Change(
            opened,
            [ClientWaitlisted(case_id="c1", constraint="no-free-supporter", reason="none free")],
        )

    with pytest.raises(TimeoutError):
        await unit.change("org-1", "c1", decide)
    publisher.down = False

    assert await unit.flush_pending(settle_s=60) == 0  # its handler may still be on it
    clock.advance(timedelta(seconds=61))
    assert await unit.flush_pending(settle_s=60) == 1
    assert len(publisher.published) == 1


async def test_the_same_command_on_two_replicas_gets_one_reply_when_one_finishes_mid_read() -> None:
    # Replica B, finding the id claimed and unanswered, read the kept replies (none yet) and
    # then the record, by which time A had kept its reply and cleared the outbox: B decided
    # again on the record A made and refused the command ("already there") (a CI run, once).
    store_kv, replies_kv, publisher = (
        FakeKeyValue().as_kv(),
        FakeKeyValue().as_kv(),
        FakePublisher(),
    )
    matches = RecordStore(store_kv, CaseMatch)
    command = received(
        GiveConsent(case_id="c1", party_id="client", stages=[Stage.ENTRY], given_on=NOW.date())
    )

    def decide(match: CaseMatch | None, _: None) -> Change[CaseMatch]:
        if match is not None:
            raise Refused("case_id", "already there")
        opened = CaseMatch(case_id="c1", status="waitlisted", since=NOW, updated_at=NOW)
        return Change(opened, [ClientWaitlisted(case_id="c1", constraint="none", reason="none")])

    replica_a = UnitOfWork(matches, ManualClock(NOW), "a", ReplyStore(replies_kv), publisher)
    finished_by_a: list[Reply | None] = []

    class ReadJustBeforeAFinishes(ReplyStore):
        async def get(self, org: str, command_id: str) -> StoredReply | None:
            kept = await super().get(org, command_id)
            if not finished_by_a:  # A runs to its end between B's read and B's next step
                finished_by_a.append(
                    (await replica_a.change("org-1", "c1", decide, command=command)).reply
                )
            return kept

    replica_b = UnitOfWork(
        matches, ManualClock(NOW), "b", ReadJustBeforeAFinishes(replies_kv), publisher
    )
    answered_by_b = (await replica_b.change("org-1", "c1", decide, command=command)).reply

    assert isinstance(finished_by_a[0], CommandAccepted)
    assert answered_by_b == finished_by_a[0]  # the same reply, not a refusal
    assert len(publisher.published) == 1
