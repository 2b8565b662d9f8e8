"""How records are kept in KV: each with its outbox, written only by compare-and-set.

``runtime.unit`` is the one way a record changes; this module is only its storage: the
stored form (record + outbox), sealing people's fields (``runtime.vault``), listing keys.
A conflict is a value (``Conflict``), not an exception: the caller decides what to do.

Every key starts with the organisation token: ``<org>.<id>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, TypeAdapter

from contracts.records import Record
from contracts.replies import CommandAccepted
from runtime.vault import SEALED_BUCKETS, Sealer, Vault, sealer_of

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=Record)
S = TypeVar("S", bound=BaseModel)


class Outbox(BaseModel):
    """Events (and, for a command, its reply) of the last change, saved with the record."""

    events: list[str]
    # Set when a command made the change; an event or the clock makes changes too.
    command_id: str | None = None
    fingerprint: str = ""
    reply: CommandAccepted | None = None
    # When it was committed: a sweep leaves younger outboxes to the handler still on them.
    written_at: datetime | None = None
    # The message (command or event) that caused the change, if any.
    cause_id: str | None = None


class Stored(BaseModel, Generic[S]):
    """A record as kept: with the outbox of its last change while that is not carried out."""

    record: S
    outbox: Outbox | None = None


@dataclass(frozen=True)
class Conflict:
    """Someone else wrote the key since it was read: what a compare-and-set returns then."""

    key: str


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

    async def save(
        self, org: str, entity_id: str, stored: Stored[R], revision: int
    ) -> int | Conflict:
        if self.sealer is None:
            value = self._adapter.dump_json(stored)
        else:
            raw = self._adapter.dump_python(stored, mode="json")
            raw["record"] = await self.sealer.seal(org, entity_id, raw["record"], new=revision == 0)
            value = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
        return await compare_and_set(self.kv, key(org, entity_id), value, revision)

    async def remove(self, org: str, entity_id: str) -> None:
        """Remove the record and every earlier revision of it (an erasure)."""
        await self.kv.purge(key(org, entity_id))


class PlainStore(Generic[M]):
    """Records kept bare, with no outbox: for changes that announce nothing and answer no
    command (a supporter's caseload, a console account), so each change is one write. Other
    services and earlier versions read these values as the bare model."""

    def __init__(
        self, kv: KeyValue, record_type: type[M], keyed: Callable[[str, str], str] | None = None
    ) -> None:
        self.kv = kv
        self.kind = record_type.__name__
        self._type = record_type
        # ``<org>.<id>``, unless the records are nobody's organisation's (console accounts).
        self._key = keyed or key

    def stored(self, record: M, outbox: Outbox | None = None) -> Stored[M]:
        assert outbox is None, f"a {self.kind} change announces nothing and answers nothing"
        return Stored[Any](record=record)

    async def load(self, org: str, entity_id: str) -> tuple[Stored[M] | None, int]:
        record, revision = await read(self.kv, self._key(org, entity_id), self._type)
        return (None if record is None else Stored[Any](record=record)), revision

    async def save(
        self, org: str, entity_id: str, stored: Stored[M], revision: int
    ) -> int | Conflict:
        value = stored.record.model_dump_json().encode()
        return await compare_and_set(self.kv, self._key(org, entity_id), value, revision)

    async def remove(self, org: str, entity_id: str) -> None:
        await self.kv.purge(self._key(org, entity_id))

    async def each(self, org: str = "*") -> list[tuple[str, str, Stored[M], int]]:
        return []  # nothing is ever left to carry out: no outbox is kept


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


async def compare_and_set(kv: KeyValue, name: str, value: bytes, revision: int) -> int | Conflict:
    """The one compare-and-set write every store uses: create when ``revision`` is 0, else
    update from that revision. The new revision, or ``Conflict`` when someone else wrote
    first."""
    try:
        if revision == 0:
            return await kv.create(name, value)
        return await kv.update(name, value, last=revision)
    except KeyWrongLastSequenceError:
        return Conflict(name)
    except KeyNotFoundError:
        # nats-py's create, racing another create on a replicated bucket, can meet the
        # other's write in its tombstone check: someone else wrote first all the same.
        if revision == 0:
            return Conflict(name)
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
