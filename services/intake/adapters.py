"""Where intake keeps things: records (with their outbox) and replies in KV, events in JetStream.

Every key starts with the organisation token: ``<org>.<id>``.
"""

from __future__ import annotations

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
from contracts.replies import CommandAccepted

R = TypeVar("R", bound=Record)


class Outbox(BaseModel):
    """Events and reply of the last command, saved atomically with the record.

    Saving the record is the commit point; publishing and replying happen
    after, and are repeated (idempotently) if the process died in between.
    """

    command_id: str
    fingerprint: str
    reply: CommandAccepted
    events: list[str]


class Stored(BaseModel, Generic[R]):
    record: R
    outbox: Outbox | None = None


class Conflict(Exception):
    """Someone else changed the record since it was read."""


def key(org: str, entity_id: str) -> str:
    return f"{org}.{entity_id}"


class RecordStore(Generic[R]):
    def __init__(self, kv: KeyValue, record_type: type[R]) -> None:
        self._kv = kv
        self._stored_type: type[Stored[R]] = Stored[record_type]  # type: ignore[valid-type]
        self._adapter: TypeAdapter[Stored[R]] = TypeAdapter(self._stored_type)

    def stored(self, record: R, outbox: Outbox | None = None) -> Stored[R]:
        return self._stored_type(record=record, outbox=outbox)

    async def load(self, org: str, entity_id: str) -> tuple[Stored[R] | None, int]:
        """The stored record and its revision (0 when there is none)."""
        try:
            entry = await self._kv.get(key(org, entity_id))
        except KeyNotFoundError:
            return None, 0
        assert entry.value is not None
        assert entry.revision is not None
        return self._adapter.validate_json(entry.value), entry.revision

    async def save(self, org: str, entity_id: str, stored: Stored[R], revision: int) -> int:
        value = self._adapter.dump_json(stored)
        try:
            if revision == 0:
                return await self._kv.create(key(org, entity_id), value)
            return await self._kv.update(key(org, entity_id), value, last=revision)
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


class EventPublisher:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def publish(self, serialized_envelopes: list[str]) -> None:
        for raw in serialized_envelopes:
            await bus.publish_event(self._js, RawEnvelope.model_validate_json(raw))


def fingerprint(data: BaseModel) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
