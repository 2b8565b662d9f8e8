"""The one way state changes: read, decide, write by compare-and-set, publish, clear.

Every change of a record, whatever caused it (a command, an event, the clock), goes
through ``UnitOfWork.change``:

1. read the record, carrying out first what its last change left (``settled``), so a
   decision never sees a record with something still pending;
2. ``gather`` what the decision needs besides the record (other records, another
   service's judgement, a reservation), with I/O;
3. ``decide``: a pure function of the record and what was gathered. It returns a value:
   a ``Change`` (the new record and its events), a ``Removal``, ``Stale`` (what was
   gathered no longer fits: gather again) or None (nothing to change); it raises
   ``Refused`` for a command that cannot apply;
4. write the record with its outbox (the events, the command's reply) in one write by
   compare-and-set: the commit point. A conflict is a value: decide again on the record
   as it now stands, a bounded number of times;
5. publish the outbox's events, keep the reply for retries, clear the outbox (``flush``,
   safe to repeat: event ids derive from the revision decided on, or the command).

A command's id is claimed with its payload's fingerprint before anything is decided, so
a retry gets the same answer and one id never carries two commands (``ReplyStore``).
What a gather reserved and a decision did not commit is given back (``release``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from contracts.envelope import RawEnvelope, wrap
from contracts.replies import CommandAccepted, CommandRejected, FieldError
from runtime import bus, tracing
from runtime.changes import Change, Contended, Refused, Removal, Stale, backoff
from runtime.clock import Clock
from runtime.dispatch import CAUSE, Received
from runtime.store import Conflict, Outbox, Stored, compare_and_set, key

R = TypeVar("R", bound=BaseModel)
In = TypeVar("In")
Reply = CommandAccepted | CommandRejected

MAX_CONFLICT_RETRIES = 10  # decisions again on a record others keep writing
MAX_GATHERS = 5  # gathers again when what was gathered kept going stale
_EVENT_NAMESPACE = uuid.UUID("9d3a6f41-0c7e-4b8a-a2f5-5e1b7c0d4e93")


class Store(Protocol[R]):
    """Where a unit keeps its records (``runtime.store``: ``RecordStore``, ``PlainStore``;
    the rules service's ``DecisionStore``)."""

    kind: str

    def stored(self, record: R, outbox: Outbox | None = None) -> Stored[R]: ...

    async def load(self, org: str, entity_id: str) -> tuple[Stored[R] | None, int]: ...

    async def save(
        self, org: str, entity_id: str, stored: Stored[R], revision: int
    ) -> int | Conflict: ...

    async def remove(self, org: str, entity_id: str) -> None: ...

    async def each(self, org: str = "*") -> list[tuple[str, str, Stored[R], int]]: ...


# Dedupe: a command id's claim and its reply, kept for retries ------------------------------


class StoredReply(BaseModel):
    """A command id's claim: the fingerprint of the command that first used it and, once
    that command is committed, its reply."""

    fingerprint: str
    reply: CommandAccepted | None = None


class ReplyStore:
    """Replies to accepted commands, so a repeated command id gets the same answer; and each
    id's claim, so one id can never carry two different commands, however they race."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, org: str, command_id: str) -> StoredReply | None:
        try:
            entry = await self._kv.get(key(org, command_id))
        except KeyNotFoundError:
            return None
        assert entry.value is not None
        return StoredReply.model_validate_json(entry.value)

    async def put(self, org: str, command_id: str, stored: StoredReply) -> None:
        await self._kv.put(key(org, command_id), stored.model_dump_json().encode())

    async def claim(self, command: Received, fingerprint_now: str) -> StoredReply | None:
        """Claim the command's id for this payload before deciding. None: go on (the claim is
        ours, or the same command's, still unanswered); else what the id already holds."""
        claim = StoredReply(fingerprint=fingerprint_now).model_dump_json().encode()
        name = key(command.org, command.envelope.id)
        if not isinstance(await compare_and_set(self._kv, name, claim, 0), Conflict):
            return None
        held = await self.get(command.org, command.envelope.id)
        if held is None or (held.fingerprint == fingerprint_now and held.reply is None):
            return None
        return held


def fingerprint(data: BaseModel) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def repeated(
    command_type: str,
    command_id: str,
    stored_fingerprint: str,
    reply: CommandAccepted | None,
    fingerprint_now: str,
) -> Reply | None:
    """The answer to a command id seen before: the same reply, unless the payload differs
    (None: the same command, not answered yet)."""
    if stored_fingerprint != fingerprint_now:
        reason = "this command id was already used for another command"
        return CommandRejected(
            command_id=command_id,
            command_type=command_type,
            errors=[FieldError(field="id", reason=reason)],
        )
    return reply


def accepted(command: Received | None, events: list[RawEnvelope]) -> CommandAccepted | None:
    """A command's reply once its change is decided: accepted, naming its events' ids."""
    if command is None:
        return None
    return CommandAccepted(
        command_id=command.envelope.id,
        command_type=command.envelope.type,
        event_ids=[e.id for e in events],
    )


def refusal(command: Received, refused: Refused) -> CommandRejected:
    return CommandRejected(
        command_id=command.envelope.id,
        command_type=command.envelope.type,
        errors=refused.errors,
    )


class EventPublisher:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def publish(self, serialized_envelopes: list[str]) -> None:
        for raw in serialized_envelopes:
            await bus.publish_event(self._js, RawEnvelope.model_validate_json(raw))


# The unit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventKey:
    """What an event's id derives from: the record, the revision the change was decided on,
    the message that caused it (if any), the event's place in the change, and the record
    it made."""

    org: str
    entity_id: str
    revision: int
    command_id: str | None
    index: int
    record: BaseModel | None


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """How a change ended: the reply to its command (None for an event's or the clock's),
    and the record as it now stands with its revision. ``committed``: this call wrote it."""

    reply: Reply | None
    record: R | None
    revision: int
    committed: bool = False

    @property
    def answer(self) -> Reply:
        """The reply to a command: a change made for a command always has one."""
        assert self.reply is not None
        return self.reply


AfterCommit = Callable[[str, str, Stored[R]], Awaitable[None]]
Decide = Callable[[R | None, In], Change[R] | Removal | Stale | None]


@dataclass(frozen=True)
class UnitOfWork(Generic[R]):
    """Changes one kind of record exactly once in effect (see the module's docstring).

    ``after_commit`` carries out a committed change's other effects (idempotent: it runs on
    every flush of the outbox, so a crash in between is completed). ``event_id`` says how
    event ids derive (default: from the record, the revision decided on and the index).
    """

    store: Store[R]
    clock: Clock
    source: str
    # None for a unit whose changes announce nothing and answer no command (``PlainStore``).
    replies: ReplyStore | None = None
    events: EventPublisher | None = None
    after_commit: AfterCommit[R] | None = None
    event_id: Callable[[EventKey], str] | None = None
    conflict_retries: int = MAX_CONFLICT_RETRIES

    async def change(
        self,
        org: str,
        entity_id: str,
        decide: Decide[R, In],
        *,
        gather: Callable[[R | None], Awaitable[In]] | None = None,
        release: Callable[[In], Awaitable[None]] | None = None,
        command: Received | None = None,
    ) -> Outcome[R]:
        """Gather, decide, commit and publish (the module's docstring says how).
        ``release`` gives back what ``gather`` reserved when it was not committed (stale,
        refused, nothing to change, or a failure). Raises ``Contended`` when the record, or
        what was gathered for it, kept changing under every retry."""
        print_ = fingerprint(command.command) if command else ""
        if command is not None:
            assert self.replies is not None, f"{self.store.kind} changes answer no command"
            held = await self.replies.claim(command, print_)
            if held is not None:
                answer = repeated(
                    command.envelope.type, command.envelope.id, held.fingerprint, held.reply, print_
                )
                if answer is not None:
                    return Outcome(answer, None, 0)
        for _ in range(MAX_GATHERS):
            answer, stored, revision = await self._settle(org, entity_id, command)
            if answer is not None:
                return Outcome(answer, None, 0)
            seen = stored.record if stored else None
            try:
                gathered = await gather(seen) if gather else None
            except Refused as refused:  # e.g. another service refused what was asked of it
                if command is None:
                    raise
                return Outcome(refusal(command, refused), seen, revision)
            outcome: Outcome[R] | Stale | None = None
            try:
                outcome = await self._decide(
                    org, entity_id, decide, gathered, stored, revision, command, print_
                )
            finally:
                committed = isinstance(outcome, Outcome) and outcome.committed
                if release is not None and not committed:
                    await release(gathered)  # type: ignore[arg-type]
            if isinstance(outcome, Outcome):
                return outcome
        raise Contended(f"{org}.{entity_id}: what its decision needs kept changing")

    async def _decide(
        self,
        org: str,
        entity_id: str,
        decide: Decide[R, Any],
        gathered: Any,
        stored: Stored[R] | None,
        revision: int,
        command: Received | None,
        print_: str,
    ) -> Outcome[R] | Stale:
        """Decide on the record as it stands and commit; on a conflict, again."""
        for attempt in range(self.conflict_retries):
            if attempt:
                await backoff(attempt)
                answer, stored, revision = await self._settle(org, entity_id, command)
                if answer is not None:
                    return Outcome(answer, None, 0)
            current = stored.record if stored else None
            try:
                decision = decide(current, gathered)
            except Refused as refused:
                assert command is not None, "only a command can be refused"
                return Outcome(refusal(command, refused), current, revision)
            if decision is None:
                return Outcome(None, current, revision)
            if isinstance(decision, Stale):
                return decision
            if isinstance(decision, Removal):
                return await self._remove(org, entity_id, decision, revision, command, print_)
            written = await self._commit(org, entity_id, revision, decision, command, print_)
            if not isinstance(written, Conflict):
                return written
        raise Contended(f"{org}.{entity_id} kept changing")

    def _envelopes(
        self,
        org: str,
        entity_id: str,
        revision: int,
        change: Change[R] | Removal,
        command: Received | None,
    ) -> list[RawEnvelope]:
        cause = command.envelope if command else CAUSE.get()
        record = change.record if isinstance(change, Change) else None
        ids = self.event_id or self._by_revision
        time = change.at or self.clock()
        return [
            wrap(
                event,
                org=org,
                source=self.source,
                time=time,
                id=ids(EventKey(org, entity_id, revision, cause.id if cause else None, i, record)),
                cause=cause,
                traceparent=tracing.current(),
            )
            for i, event in enumerate(change.events)
        ]

    async def _commit(
        self,
        org: str,
        entity_id: str,
        revision: int,
        change: Change[R],
        command: Received | None,
        print_: str,
    ) -> Outcome[R] | Conflict:
        events = self._envelopes(org, entity_id, revision, change, command)
        reply = accepted(command, events)
        if not events and reply is None and self.after_commit is None:
            # Nothing follows the write: no outbox, so the change is one write.
            written = await self.store.save(
                org, entity_id, self.store.stored(change.record), revision
            )
            if isinstance(written, Conflict):
                return written
            return Outcome(None, change.record, written, committed=True)
        cause = command.envelope if command else CAUSE.get()
        outbox = Outbox(
            events=[e.model_dump_json() for e in events],
            command_id=command.envelope.id if command else None,
            fingerprint=print_,
            reply=reply,
            written_at=self.clock(),
            cause_id=cause.id if cause else None,
        )
        new = self.store.stored(change.record, outbox)
        written = await self.store.save(org, entity_id, new, revision)
        if isinstance(written, Conflict):
            return written
        await self.flush(org, entity_id, new, written)
        return Outcome(reply, change.record, written, committed=True)

    async def _remove(
        self,
        org: str,
        entity_id: str,
        removal: Removal,
        revision: int,
        command: Received | None,
        print_: str,
    ) -> Outcome[R]:
        """Carry out a removal: its first step, the record's removal, its events, the reply.
        Each step may be repeated, so the same command sent again after a crash finishes it
        (no outbox can outlive the record)."""
        events = self._envelopes(org, entity_id, revision, removal, command)
        if removal.first is not None:
            await removal.first()
        await self.store.remove(org, entity_id)
        await self._publish([e.model_dump_json() for e in events])
        reply = accepted(command, events)
        if command is not None and reply is not None:
            await self._keep(org, command.envelope.id, StoredReply(fingerprint=print_, reply=reply))
        return Outcome(reply, None, 0, committed=True)

    async def _settle(
        self, org: str, entity_id: str, command: Received | None
    ) -> tuple[Reply | None, Stored[R] | None, int]:
        """The record with nothing left to carry out (a crash's outbox, or another replica's
        mid-flush, flushed first); and the command's reply if that change was this command's
        (the id's claim makes it the same command), or it was answered meanwhile.

        The record is read before the kept replies, not after: the same command on another
        replica keeps its reply before it clears its outbox, so a record read with its outbox
        cleared means the reply read next is there (read the other way round, both could be
        missed, and the command decided a second time on its own result)."""
        stored, revision = await self.store.load(org, entity_id)
        for _ in range(MAX_CONFLICT_RETRIES):
            if stored is None or stored.outbox is None:
                break
            await self.flush(org, entity_id, stored, revision)
            outbox = stored.outbox
            if command and outbox.command_id == command.envelope.id and outbox.reply:
                return outbox.reply, stored, revision
            stored, revision = await self.store.load(org, entity_id)
        if command is not None and self.replies is not None:
            previous = await self.replies.get(org, command.envelope.id)
            if previous is not None and previous.reply is not None:
                return previous.reply, None, 0
        return None, stored, revision

    async def settled(self, org: str, entity_id: str) -> tuple[Stored[R] | None, int]:
        """The record and its revision, with nothing left to carry out."""
        _, stored, revision = await self._settle(org, entity_id, None)
        return stored, revision

    def _by_revision(self, key: EventKey) -> str:
        # Which record, which change of it (the revision it was decided on), which event.
        return uuid.uuid5(
            _EVENT_NAMESPACE,
            f"{self.store.kind}:{key.org}:{key.entity_id}:{key.revision}:{key.index}",
        ).hex

    async def flush(self, org: str, entity_id: str, stored: Stored[R], revision: int) -> None:
        """Carry out an outbox: the change's other effects, then its events, then keep its
        reply, then clear it. In that order: a kept reply is what a retried command is
        answered with, so it must never stand for events not yet published."""
        outbox = stored.outbox
        assert outbox is not None
        if self.after_commit is not None:
            await self.after_commit(org, entity_id, stored)
        await self._publish(outbox.events)
        if outbox.command_id is not None and outbox.reply is not None:
            kept = StoredReply(fingerprint=outbox.fingerprint, reply=outbox.reply)
            await self._keep(org, outbox.command_id, kept)
        # A conflict means someone else flushed it, or moved on after flushing it.
        await self.store.save(org, entity_id, self.store.stored(stored.record), revision)

    async def _publish(self, envelopes: list[str]) -> None:
        if envelopes:
            assert self.events is not None, f"{self.store.kind} changes announce nothing"
            await self.events.publish(envelopes)

    async def _keep(self, org: str, command_id: str, reply: StoredReply) -> None:
        assert self.replies is not None, f"{self.store.kind} changes answer no command"
        await self.replies.put(org, command_id, reply)

    async def flush_pending(self, org: str = "*", settle_s: float = 0.0) -> int:
        """Carry out every outbox a crash left behind (a sweep calls this), leaving those
        written in the last ``settle_s`` to the handler still carrying them out. Returns how
        many."""
        settled = self.clock() - timedelta(seconds=settle_s)
        pending = [
            (o, i, s, r)
            for o, i, s, r in await self.store.each(org)
            if s.outbox and (s.outbox.written_at is None or s.outbox.written_at <= settled)
        ]
        for record_org, entity_id, stored, revision in pending:
            await self.flush(record_org, entity_id, stored, revision)
        return len(pending)


def answered(reply: Reply | None) -> Reply:
    """The reply to a command: a change made for a command always has one."""
    assert reply is not None
    return reply
