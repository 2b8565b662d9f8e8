"""Records kept in KV with an outbox, replies to commands, and publishing what an outbox holds.

A service that changes a record saves the record together with what must follow
(events to publish, the reply to keep) in one KV write guarded by revision:
that write is the commit point. ``flush`` then carries out the outbox, and is
safe to repeat (events carry their ``Nats-Msg-Id``; the reply is the same), so
a process that died in between is completed by whoever next touches the record.

Every key starts with the organisation token: ``<org>.<id>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Generic, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, TypeAdapter

from alongside.runtime import bus
from contracts.envelope import RawEnvelope
from contracts.records import Record
from contracts.replies import CommandAccepted, CommandRejected, FieldError

R = TypeVar("R", bound=Record)


class Outbox(BaseModel):
    """Events (and, for a command, its reply) of the last change, saved with the record."""

    events: list[str]
    # Set when a command made the change; an event or the clock makes changes too.
    command_id: str | None = None
    fingerprint: str = ""
    reply: CommandAccepted | None = None


class Stored(BaseModel, Generic[R]):
    record: R
    outbox: Outbox | None = None


class Conflict(Exception):
    """Someone else changed the record since it was read."""


def key(org: str, entity_id: str) -> str:
    return f"{org}.{entity_id}"


class RecordStore(Generic[R]):
    def __init__(self, kv: KeyValue, record_type: type[R]) -> None:
        self.kv = kv
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
        return self._adapter.validate_json(entry.value), entry.revision

    async def save(self, org: str, entity_id: str, stored: Stored[R], revision: int) -> int:
        value = self._adapter.dump_json(stored)
        try:
            if revision == 0:
                return await self.kv.create(key(org, entity_id), value)
            return await self.kv.update(key(org, entity_id), value, last=revision)
        except KeyWrongLastSequenceError as error:
            raise Conflict(key(org, entity_id)) from error


class StoredReply(BaseModel):
    fingerprint: str
    reply: CommandAccepted


class ReplyStore:
    """Replies to accepted commands, so a repeated command id gets the same answer."""

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


def repeated(
    command_type: str, command_id: str, stored_fingerprint: str, reply: CommandAccepted,
    fingerprint_now: str,
) -> CommandAccepted | CommandRejected:  # fmt: skip
    """The answer to a command id seen before: the same reply, unless the payload differs."""
    if stored_fingerprint != fingerprint_now:
        return CommandRejected(
            command_id=command_id, command_type=command_type,
            errors=[FieldError(field="id",
                               reason="this command id was already used for another command")],
        )  # fmt: skip
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
    org: str, entity_id: str, store: RecordStore[R], stored: Stored[R], revision: int,
    events: EventPublisher, replies: ReplyStore,
) -> None:  # fmt: skip
    """Publish the outbox's events and keep its reply (in parallel), then clear it."""
    outbox = stored.outbox
    assert outbox is not None
    keep_reply = (
        replies.put(org, outbox.command_id, StoredReply(fingerprint=outbox.fingerprint,
                                                        reply=outbox.reply))
        if outbox.command_id is not None and outbox.reply is not None
        else asyncio.sleep(0)
    )  # fmt: skip
    await asyncio.gather(events.publish(outbox.events), keep_reply)
    # A conflict means someone else flushed it, or moved on after flushing it.
    with contextlib.suppress(Conflict):
        await store.save(org, entity_id, store.stored(stored.record), revision)
