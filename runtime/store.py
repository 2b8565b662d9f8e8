"""Records kept in KV with an outbox, replies to commands, and publishing what an outbox holds.

A service that changes a record saves the record together with what must follow
(events to publish, the reply to keep) in one KV write guarded by revision:
that write is the commit point. ``flush`` then carries out the outbox, and is
safe to repeat (events carry their ``Nats-Msg-Id``; the reply is the same), so
a process that died in between is completed by whoever next touches the record.

Every key starts with the organisation token: ``<org>.<id>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, TypeAdapter

from contracts.envelope import RawEnvelope, wrap
from contracts.records import Record
from contracts.replies import CommandAccepted, CommandRejected, FieldError
from runtime import bus, tracing
from runtime.changes import Change, Contended, Refused, Regather, backoff
from runtime.clock import Clock
from runtime.dispatch import CAUSE, Received
from runtime.vault import SEALED_BUCKETS, Sealer, Vault, sealer_of

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=Record)


class Outbox(BaseModel):
    """Events (and, for a command, its reply) of the last change, saved with the record."""

    events: list[str]
    # Set when a command made the change; an event or the clock makes changes too.
    command_id: str | None = None
    fingerprint: str = ""
    reply: CommandAccepted | None = None
    # When it was committed: a sweep leaves younger outboxes to the handler still on them.
    written_at: datetime | None = None


class Stored(BaseModel, Generic[R]):
    record: R
    outbox: Outbox | None = None


class Conflict(Exception):
    """Someone else changed the record since it was read."""


def key(org: str, entity_id: str) -> str:
    return f"{org}.{entity_id}"


class RecordStore(Generic[R]):
    """Records of one kind in one bucket. With a ``sealer``, their personal and sensitive
    fields are stored sealed with each one's person's key (``runtime.vault``)."""

    def __init__(self, kv: KeyValue, record_type: type[R], sealer: Sealer | None = None) -> None:
        self.kv = kv
        self.sealer = sealer
        self.kind = record_type.__name__
        self._stored_type: type[Stored[R]] = Stored[record_type]  # type: ignore[valid-type]
        self._adapter: TypeAdapter[Stored[R]] = TypeAdapter(self._stored_type)

    def stored(self, record: R, outbox: Outbox | None = None) -> Stored[R]:
        return self._stored_type(record=record, outbox=outbox)

    async def load(self, org: str, entity_id: str) -> tuple[Stored[R] | None, int]:
        """The stored record and its revision (0 when there is none)."""
        try:
            entry = await self.kv.get(key(org, entity_id))
        except KeyNotFoundError:
            return None, 0
        assert entry.value is not None
        assert entry.revision is not None
        return await self.parse(org, entity_id, entry.value), entry.revision

    async def parse(self, org: str, entity_id: str, value: bytes) -> Stored[R]:
        """A stored value of this bucket, its sealed fields opened."""
        if self.sealer is None:
            return self._adapter.validate_json(value)
        raw = json.loads(value)
        raw["record"] = await self.sealer.open(org, entity_id, raw["record"])
        return self._adapter.validate_python(raw)

    async def plain(self, org: str, entity_id: str) -> dict[str, Any] | None:
        """The stored record as JSON data, sealed fields still sealed: for a sweep that
        looks only at statuses and dates, and needs no key."""
        try:
            entry = await self.kv.get(key(org, entity_id))
        except KeyNotFoundError:
            return None
        record: dict[str, Any] = json.loads(entry.value or b"{}")["record"]
        return record

    async def each(self, org: str = "*") -> list[tuple[str, str, Stored[R], int]]:
        """Every record of one organisation (or all): (org, id, stored, revision)."""
        found = []
        for name in await keys(self.kv, f"{org}.*"):
            record_org, entity_id = name.split(".", 1)
            stored, revision = await self.load(record_org, entity_id)
            if stored is not None:
                found.append((record_org, entity_id, stored, revision))
        return found

    async def save(self, org: str, entity_id: str, stored: Stored[R], revision: int) -> int:
        if self.sealer is None:
            value = self._adapter.dump_json(stored)
        else:
            raw = self._adapter.dump_python(stored, mode="json")
            raw["record"] = await self.sealer.seal(org, entity_id, raw["record"], new=revision == 0)
            value = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
        return await compare_and_set(self.kv, key(org, entity_id), value, revision)


async def bound_store(
    js: JetStreamContext, bucket: str, model: type[R], vault: Vault | None = None
) -> RecordStore[R]:
    """A store of a provisioned bucket, for a reader outside the services. The buckets that
    hold people's data (``runtime.vault.SEALED_BUCKETS``) open them with ``vault``."""
    if bucket not in SEALED_BUCKETS:
        return RecordStore(await js.key_value(bucket), model)
    if vault is None:
        raise ValueError(f"{bucket} holds people's data, sealed: reading it needs the vault")
    return RecordStore(await js.key_value(bucket), model, sealer_of(vault, bucket))


async def compare_and_set(kv: KeyValue, name: str, value: bytes, revision: int) -> int:
    """The one compare-and-set write every store uses: create when ``revision`` is 0, else
    update from that revision; ``Conflict`` when someone else wrote first. Returns the new
    revision."""
    try:
        if revision == 0:
            return await kv.create(name, value)
        return await kv.update(name, value, last=revision)
    except KeyWrongLastSequenceError as error:
        raise Conflict(name) from error
    except KeyNotFoundError as error:
        # nats-py's create, racing another create on a replicated bucket, can meet the
        # other's write in its tombstone check: someone else wrote first all the same.
        if revision == 0:
            raise Conflict(name) from error
        raise


async def read(kv: KeyValue, key: str, model: type[M]) -> tuple[M | None, int]:
    """A plain record (no outbox) and its revision; (None, 0) when there is none."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, 0
    assert entry.value is not None
    assert entry.revision is not None
    return model.model_validate_json(entry.value), entry.revision


async def keys(kv: KeyValue, pattern: str) -> list[str]:
    """Keys matching a subject-style ``pattern`` (``org.*``), read from the bucket stream's
    subject index: no consumer is made. (A watch per listing left a server-side consumer
    alive for minutes, and nats-server refuses the 1,001st consumer on a stream.) Paged as
    the server pages it. A deleted key may be listed until the bucket compacts: readers load
    each key and skip what is gone."""
    # nats-py 2.16 (pinned) has no public call for a KV bucket's subjects with paging; its
    # KeyValue keeps its JetStream context, stream and key prefix in these attributes.
    js, stream, prefix = kv._js, kv._stream, kv._pre
    return [s[len(prefix) :] for s in await stream_subjects(js, stream, f"{prefix}{pattern}")]


async def stream_subjects(js: JetStreamContext, stream: str, pattern: str) -> list[str]:
    """The subjects of ``stream`` matching ``pattern`` that hold a message, sorted; paged as
    the server pages them (nats-py asks for them unpaged)."""
    found: list[str] = []
    while True:
        request = {"subjects_filter": pattern, "offset": len(found)}
        info = await js._api_request(
            f"{js._prefix}.STREAM.INFO.{stream}", json.dumps(request).encode(), timeout=5.0
        )
        page = list((info.get("state") or {}).get("subjects") or {})
        found.extend(page)
        if not page or len(found) >= int(info.get("total") or 0):
            return sorted(found)


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
        try:
            await compare_and_set(self._kv, key(command.org, command.envelope.id), claim, 0)
            return None
        except Conflict:
            held = await self.get(command.org, command.envelope.id)
        if held is None or (held.fingerprint == fingerprint_now and held.reply is None):
            return None
        return held


def repeated(
    command_type: str,
    command_id: str,
    stored_fingerprint: str,
    reply: CommandAccepted | None,
    fingerprint_now: str,
) -> CommandAccepted | CommandRejected | None:
    """The answer to a command id seen before: the same reply, unless the payload differs
    (None: the same command, not answered yet)."""
    if stored_fingerprint != fingerprint_now:
        return CommandRejected(
            command_id=command_id,
            command_type=command_type,
            errors=[
                FieldError(
                    field="id", reason="this command id was already used for another command"
                )
            ],
        )
    return reply


class EventPublisher:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def publish(self, serialized_envelopes: list[str]) -> None:
        for raw in serialized_envelopes:
            await bus.publish_event(self._js, RawEnvelope.model_validate_json(raw))


def fingerprint(data: BaseModel) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def flush(
    org: str,
    entity_id: str,
    store: RecordStore[R],
    stored: Stored[R],
    revision: int,
    events: EventPublisher,
    replies: ReplyStore,
) -> None:
    """Publish the outbox's events, then keep its reply, then clear it. In that order: a
    kept reply is what a retried command is answered with, so it must never stand for
    events not yet published (while a cluster elected a leader, retries were told
    "accepted" for cases whose IntakeReceived then waited for the hourly sweep)."""
    outbox = stored.outbox
    assert outbox is not None
    await events.publish(outbox.events)
    if outbox.command_id is not None and outbox.reply is not None:
        kept = StoredReply(fingerprint=outbox.fingerprint, reply=outbox.reply)
        await replies.put(org, outbox.command_id, kept)
    # A conflict means someone else flushed it, or moved on after flushing it.
    with contextlib.suppress(Conflict):
        await store.save(org, entity_id, store.stored(stored.record), revision)


Decide = Callable[[R | None], Awaitable[Change[R] | None]]


@dataclass(frozen=True)
class EventKey:
    """What an event's id derives from: the record, the revision the change was decided on,
    the command that caused it (if any) and the event's place in the change."""

    org: str
    entity_id: str
    revision: int
    command_id: str | None
    index: int


MAX_CONFLICT_RETRIES = 10


def _kept_changing(what: str) -> Contended:
    """Every retry lost: an event or the clock's change is looked at again later; a command
    is answered ``CommandUnavailable`` (``commands.serve``), and its client sends it again."""
    return Contended(what)


MAX_GATHERS = 5
In = TypeVar("In")
_EVENT_NAMESPACE = uuid.UUID("9d3a6f41-0c7e-4b8a-a2f5-5e1b7c0d4e93")


@dataclass(frozen=True)
class Changer(Generic[R]):
    """Changes one kind of record exactly once in effect, whether a command, an event or the
    clock caused it: decide on the current state, commit record + outbox by revision (again
    on a conflict), then flush. Event ids derive from the revision the change was decided
    on, so a repeated flush republishes the same ids.

    ``before_publish`` carries out a committed change's other effects (idempotent, run on
    every flush); ``on_conflict`` undoes what a losing decision did outside the record.
    """

    store: RecordStore[R]
    replies: ReplyStore
    events: EventPublisher
    source: str
    clock: Clock
    before_publish: Callable[[str, str, R], Awaitable[None]] | None = None
    # How event ids derive; intake's derive from the command, as they always have (its ids
    # in existing streams stay valid).
    event_id: Callable[[EventKey], str] | None = None

    async def change(
        self,
        org: str,
        entity_id: str,
        decide: Decide[R],
        command: Received | None = None,
        on_conflict: Callable[[], Awaitable[None]] | None = None,
        loaded: tuple[Stored[R] | None, int] | None = None,
    ) -> CommandAccepted | CommandRejected | None:
        """``loaded``: the record and revision the caller just read (``settled``), so the
        first attempt does not read it again."""
        print_ = fingerprint(command.command) if command else ""
        if command is not None:
            held = await self.replies.claim(command, print_)
            if held is not None:
                return repeated(
                    command.envelope.type, command.envelope.id, held.fingerprint, held.reply, print_
                )
        for attempt in range(MAX_CONFLICT_RETRIES):
            if attempt:
                await backoff(attempt)
            if attempt == 0 and loaded is not None:
                stored, revision = loaded
            else:
                stored, revision = await self.store.load(org, entity_id)
            answer, stored, revision = await self._carry_out(
                org, entity_id, stored, revision, command
            )
            if answer is not None:
                return answer
            try:
                change = await decide(stored.record if stored else None)
            except Refused as refused:
                assert command is not None, "only a command can be refused"
                return CommandRejected(
                    command_id=command.envelope.id,
                    command_type=command.envelope.type,
                    errors=refused.errors,
                )
            if change is None:
                return None
            try:
                return await self._commit(org, entity_id, revision, change, command, print_)
            except Conflict:
                if on_conflict is not None:
                    await on_conflict()
        raise _kept_changing(f"{org}.{entity_id} kept changing")

    async def _carry_out(
        self,
        org: str,
        entity_id: str,
        stored: Stored[R] | None,
        revision: int,
        command: Received | None,
    ) -> tuple[CommandAccepted | None, Stored[R] | None, int]:
        """Carry out what the record's last change left (so a decision sees a record with
        nothing pending), and the command's reply if that change was this command's (the id's
        claim makes it the same command) or it was answered meanwhile."""
        if command is not None:
            previous = await self.replies.get(org, command.envelope.id)
            if previous is not None and previous.reply is not None:
                return previous.reply, stored, revision
        for _ in range(MAX_CONFLICT_RETRIES):
            if stored is None or stored.outbox is None:
                break
            await self.flush(org, entity_id, stored, revision)
            outbox = stored.outbox
            if command and outbox.command_id == command.envelope.id and outbox.reply:
                return outbox.reply, stored, revision
            stored, revision = await self.store.load(org, entity_id)
        return None, stored, revision

    async def _commit(
        self,
        org: str,
        entity_id: str,
        revision: int,
        change: Change[R],
        command: Received | None,
        print_: str,
    ) -> CommandAccepted | None:
        now = self.clock()
        cause = command.envelope if command else CAUSE.get()
        events = [
            wrap(
                event,
                org=org,
                source=self.source,
                time=now,
                id=(self.event_id or self._by_revision)(
                    EventKey(org, entity_id, revision, cause.id if cause else None, i)
                ),
                cause=cause,
                traceparent=tracing.current(),
            )
            for i, event in enumerate(change.events)
        ]
        reply = (
            CommandAccepted(
                command_id=command.envelope.id,
                command_type=command.envelope.type,
                event_ids=[e.id for e in events],
            )
            if command
            else None
        )
        outbox = Outbox(
            events=[e.model_dump_json() for e in events],
            command_id=command.envelope.id if command else None,
            fingerprint=print_,
            reply=reply,
            written_at=now,
        )
        new = self.store.stored(change.record, outbox)
        revision = await self.store.save(org, entity_id, new, revision)
        await self.flush(org, entity_id, new, revision)
        return reply

    async def settled(self, org: str, entity_id: str) -> tuple[Stored[R] | None, int]:
        """The record (and its revision) with nothing left to carry out: a pending outbox (a
        crash, or another replica mid-flush) is flushed first, so what is gathered for it is
        not undone by that flush afterwards (a release of holds, a reminder cleared)."""
        stored, revision = await self.store.load(org, entity_id)
        _, stored, revision = await self._carry_out(org, entity_id, stored, revision, None)
        return stored, revision

    async def gather_and_change(
        self,
        org: str,
        entity_id: str,
        gather: Callable[[R | None], Awaitable[In]],
        decide: Callable[[R | None, In], Change[R] | None],
        command: Received | None = None,
        on_conflict: Callable[[], Awaitable[None]] | None = None,
    ) -> CommandAccepted | CommandRejected | None:
        """Gather what a decision needs besides its record (other records, another service's
        judgement), then decide purely and commit (``change``). A conflict decides again on
        the new record with the same inputs, with no I/O in between; a decision that finds its
        inputs no longer fit the record raises ``Regather``, and they are gathered again."""
        for _ in range(MAX_GATHERS):
            loaded = await self.settled(org, entity_id)
            try:
                inputs = await gather(loaded[0].record if loaded[0] else None)
            except Refused as refused:  # e.g. another service refused what was asked of it
                if command is None:
                    raise
                return CommandRejected(
                    command_id=command.envelope.id,
                    command_type=command.envelope.type,
                    errors=refused.errors,
                )

            async def pure(record: R | None, inputs: In = inputs) -> Change[R] | None:
                return decide(record, inputs)

            try:
                return await self.change(org, entity_id, pure, command, on_conflict, loaded)
            except Regather:
                continue
        raise _kept_changing(f"{org}.{entity_id}: its inputs kept changing")

    def _by_revision(self, key: EventKey) -> str:
        # Which record, which change of it (the revision it was decided on), which event.
        return uuid.uuid5(
            _EVENT_NAMESPACE,
            f"{self.store.kind}:{key.org}:{key.entity_id}:{key.revision}:{key.index}",
        ).hex

    async def flush(self, org: str, entity_id: str, stored: Stored[R], revision: int) -> None:
        if self.before_publish is not None:
            await self.before_publish(org, entity_id, stored.record)
        await flush(org, entity_id, self.store, stored, revision, self.events, self.replies)

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


def answered(reply: CommandAccepted | CommandRejected | None) -> CommandAccepted | CommandRejected:
    """The reply to a command: a change made for a command always has one."""
    assert reply is not None
    return reply
