"""Keys that make a person's data erasable (crypto-shredding).

Each person (a client, by their case; a supporter) has a data key of their own, made the
first time something of theirs is sealed. It is kept wrapped (AES-GCM) under their
organisation's key, which is derived (HKDF) from the deployment's master key and never
stored, in the stream ``KEYS``, one message per person. A personal field is sealed with
the person's key where it is stored (``SEALED_BUCKETS``: intake's records, matching's
and scheduling's, each by whose data it holds); erasing the person deletes that one
message, and JetStream overwrites a deleted message's bytes on disk, so every copy sealed
with it (any revision, any backup) can never be read again. A tombstone then stands in the
key's place, so nothing new is sealed for someone erased.

Caveat: in a cluster, a stream's replication log also holds the wrapped key until the
log is compacted (snapshots); the wrapped key alone, without the master key, opens nothing.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from pydantic import BaseModel

from contracts import privacy, subjects
from contracts.records import CaseMatch, CaseRecord, CaseSchedule, SupporterRecord
from contracts.replies import DeadLetter
from contracts.rules import RulesDecision
from runtime import topology
from runtime.settings import Settings

Person = Literal["client", "supporter"]
# Whose key it is: a person's, or one day's dead letters of an organisation (erased when
# they expire, so no copy of them can be read after).
Holder = Literal["client", "supporter", "dead_letters"]
SEALED = "enc:v1:"  # the prefix of a sealed value
_NONCE = 12
_ERASED = b'{"erased": true}'
_ERASED_BY = "Alongside-Erased-By"  # the tombstone's header: which command erased them


class Erased(Exception):
    """The person was erased: their data cannot be read, and nothing new is kept for them.
    ``by``: the command that erased them, when known."""

    def __init__(self, what: str, by: str | None = None) -> None:
        super().__init__(what)
        self.by = by


T = TypeVar("T")


async def unless_erased(read: Awaitable[T]) -> T | None:
    """What ``read`` gives, or None when it is about someone erased: a sweep over every
    record passes them by (a purged key is listed until its bucket compacts)."""
    try:
        return await read
    except Erased:
        return None


class NoMasterKey(Exception):
    """A process that keeps people's data started without the deployment's master key."""


def load_master_key(path: Path, create: bool = False) -> bytes:
    """The deployment's master key (32 random bytes; with ``create``, made on first use,
    owner-only). Never made silently elsewhere: two processes with keys of their own could
    not read each other's data."""
    if not path.exists() and not create:
        raise NoMasterKey(
            f"no master key at {path}: every process of a deployment shares one; set "
            "ALONGSIDE_MASTER_KEY_FILE to the file `alongside auth init` made"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) != 32:
        raise ValueError(f"{path}: a master key is 32 bytes, not {len(key)}")
    return key


# A replica keeps a key it read this long: erasing reaches every replica within it (what
# it seals meanwhile is sealed with the erased key, and as unreadable as the rest).
KEY_KEPT_S = 30.0


class Vault:
    @classmethod
    def of(cls, js: JetStreamContext, settings: Settings) -> Vault:
        return cls(js, load_master_key(settings.master_key_path))

    def __init__(self, js: JetStreamContext, master: bytes) -> None:
        self.js = js
        self._master = master
        self._kept: dict[str, tuple[bytes, float]] = {}
        self._org_keys: dict[str, AESGCM] = {}

    def _org_key(self, org: str) -> AESGCM:
        if org not in self._org_keys:
            derive = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=b"alongside organisation key " + org.encode(),
            )
            self._org_keys[org] = AESGCM(derive.derive(self._master))
        return self._org_keys[org]

    async def key(self, org: str, person: Holder, person_id: str) -> bytes | None:
        """The person's data key; None if they have none yet. ``Erased`` if erased."""
        subject = subjects.person_key(org, person, person_id)
        kept = self._kept.get(subject)
        if kept is not None and time.monotonic() - kept[1] < KEY_KEPT_S:
            return kept[0]
        try:
            msg = await self.js.get_last_msg(topology.KEYS_STREAM, subject, direct=True)
        except NotFoundError:
            return None
        if msg.data == _ERASED:
            by = (msg.headers or {}).get(_ERASED_BY)
            raise Erased(f"{person} {person_id} of {org} was erased", by)
        assert msg.data is not None
        wrapped = msg.data
        key = self._org_key(org).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], subject.encode())
        self._keep(subject, key)
        return key

    def _keep(self, subject: str, key: bytes) -> None:
        if len(self._kept) > 50_000:  # bounded: forget all, read again as needed
            self._kept.clear()
        self._kept[subject] = (key, time.monotonic())

    async def key_or_new(
        self, org: str, person: Holder, person_id: str, fresh: bool = False
    ) -> bytes:
        """The person's data key, made now if they have none (once, whoever races).
        ``fresh``: they are most likely new (their own record is being created), so it is
        made without asking first; one who has a key, or was erased, is asked for then."""
        subject = subjects.person_key(org, person, person_id)
        kept = self._kept.get(subject)
        if not fresh or kept is not None:
            found = await self.key(org, person, person_id)
            if found is not None:
                return found
        key, nonce = AESGCM.generate_key(bit_length=256), secrets.token_bytes(_NONCE)
        wrapped = nonce + self._org_key(org).encrypt(nonce, key, subject.encode())
        try:
            await self.js.publish(
                subject,
                wrapped,
                stream=topology.KEYS_STREAM,
                headers={"Nats-Expected-Last-Subject-Sequence": "0"},
            )
        except APIError:  # someone made it first (theirs is the key), or they were erased
            again = await self.key(org, person, person_id)
            assert again is not None
            return again
        self._keep(subject, key)  # the record it seals is saved again soon (its outbox)
        return key

    async def erase(self, org: str, person: Holder, person_id: str, by: str = "") -> bool:
        """Destroy the person's key for good (``by``: the command that asked); True if there
        was one to destroy."""
        subject = subjects.person_key(org, person, person_id)
        self._kept.pop(subject, None)
        try:
            msg = await self.js.get_last_msg(topology.KEYS_STREAM, subject, direct=True)
        except NotFoundError:
            msg = None
        if msg is not None and msg.data == _ERASED:
            return False
        if msg is not None:
            assert msg.seq is not None
            # Deleted with erasure (JetStream's default): the bytes are overwritten on disk.
            await self.js.delete_msg(topology.KEYS_STREAM, msg.seq)
        await self.js.publish(
            subject, _ERASED, stream=topology.KEYS_STREAM, headers={_ERASED_BY: by}
        )
        return msg is not None


def seal(key: bytes, value: Any, *, context: str) -> str:
    """``value`` (anything JSON) as one string only ``key`` opens, bound to ``context`` (the
    field's place: a sealed value moved elsewhere does not open)."""
    nonce = secrets.token_bytes(_NONCE)
    plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    sealed = nonce + AESGCM(key).encrypt(nonce, plain, context.encode())
    return SEALED + base64.b64encode(sealed).decode()


def open_sealed(key: bytes, sealed: str, *, context: str) -> Any:
    """What ``seal`` sealed; ``ValueError`` if it was sealed with another key or context."""
    if not sealed.startswith(SEALED):
        raise ValueError("not a sealed value")
    raw = base64.b64decode(sealed[len(SEALED) :])
    try:
        plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
    except InvalidTag:
        raise ValueError("sealed with another key, or for another place") from None
    return json.loads(plain)


class Sealer:
    """Seals the personal and sensitive fields of one kind of record with its person's key
    (``paths``: where they are, ``contracts.privacy.marked``), and opens them again. Every
    other field stays as it is: ids, statuses and dates are what the services query.

    ``forget``: the record outlives its person (matching's and scheduling's, which keep
    ids, dates and outcomes for reports): once the person is erased it opens with their
    fields blank (an empty list, or None) instead of raising ``Erased``."""

    def __init__(
        self,
        vault: Vault,
        person: Holder,
        model: type[BaseModel],
        place: str,
        forget: bool = False,
    ) -> None:
        self.vault, self.person, self.place, self.forget = vault, person, place, forget
        marked = sorted(privacy.marked(model))
        # The outermost marked paths: a sealed object is sealed whole.
        self.paths = [p for p in marked if not any(p.startswith(q + ".") for q in marked)]
        self._blanks = {path: _blank(model, path.split(".")) for path in self.paths if forget}

    async def seal(
        self, org: str, person_id: str, record: dict[str, Any], new: bool = False
    ) -> dict[str, Any]:
        """The record with its marked fields sealed; nothing to seal (all blank), no key
        asked for, so a record whose person was erased can still be saved. ``new``: the
        record is being created; a new case or supporter is, almost always, a new person."""
        if not any(v not in (None, [], "") for p in self.paths for v in _values(record, p)):
            return record
        fresh = new and not self.forget  # a record that outlives its person is not theirs
        key = await self.vault.key_or_new(org, self.person, person_id, fresh=fresh)
        for path in self.paths:
            _each(record, path.split("."), partial(seal, key, context=f"{self.place}.{path}"))
        return record

    async def open(self, org: str, person_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record with its sealed fields opened; ``Erased`` if its person was erased.
        (A record written before sealing began has nothing sealed, and opens as it is.)"""
        if not any(_is_sealed(v) for p in self.paths for v in _values(record, p)):
            return record
        try:
            key = await self.vault.key(org, self.person, person_id)
            if key is None:
                raise Erased(f"{self.person} {person_id} of {org} has no key")
        except Erased:
            if not self.forget:
                raise
            for path in self.paths:
                _each(record, path.split("."), partial(_replaced, self._blanks[path]))
            return record
        for path in self.paths:
            _each(record, path.split("."), partial(_opened, key, context=f"{self.place}.{path}"))
        return record


def _blank(annotation: Any, path: list[str]) -> Any:
    """What an erased field reads as: an empty list for a list, "" for a required text,
    else None."""
    if not path:
        origins = (get_origin(annotation), *map(get_origin, get_args(annotation)))
        return [] if list in origins else "" if annotation is str else None
    for model in _models(annotation):
        if path[0] in model.model_fields:
            return _blank(model.model_fields[path[0]].annotation, path[1:])
    return None


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models an annotation holds (itself, in a list, or one of a union's)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models(arg)


def _replaced(by: Any, _: Any) -> Any:
    return by


def _is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED)


def _opened(key: bytes, value: Any, context: str) -> Any:
    return open_sealed(key, value, context=context) if _is_sealed(value) else value


def _values(node: Any, path: str) -> list[Any]:
    found: list[Any] = []

    def keep(value: Any) -> Any:
        found.append(value)
        return value

    _each(node, path.split("."), keep)
    return found


def _each(node: Any, path: list[str], change: Callable[[Any], Any]) -> None:
    """Replace the value at ``path`` (through lists, and past records that lack it) by
    ``change`` of it; None stays None."""
    if isinstance(node, list):
        for item in node:
            _each(item, path, change)
        return
    if not isinstance(node, dict) or path[0] not in node:
        return
    if len(path) == 1:
        if node[path[0]] is not None:
            node[path[0]] = change(node[path[0]])
        return
    _each(node[path[0]], path[1:], change)


# The buckets that hold people's data: whose key seals it, and whether a record outlives
# its person's erasure (intake's records are removed with the person; the rest are kept,
# blank where the person was).
SEALED_BUCKETS: dict[str, tuple[Person, type[BaseModel], bool]] = {
    topology.SUPPORTERS_BUCKET: ("supporter", SupporterRecord, False),
    topology.CASES_BUCKET: ("client", CaseRecord, False),  # the client's, dispute's, parties'
    topology.MATCHES_BUCKET: ("client", CaseMatch, True),  # explanations, waitlist reasons
    topology.SCHEDULES_BUCKET: ("client", CaseSchedule, True),  # session notes
}


def sealer_of(vault: Vault, bucket: str) -> Sealer:
    """The sealer for one of ``SEALED_BUCKETS``, each of its records with its person's key."""
    person, model, outlives = SEALED_BUCKETS[bucket]
    return Sealer(vault, person, model, bucket, forget=outlives)


class DecisionSealer:
    """A rules decision's fired rules, their reasons and effects, are filled from the facts
    (what a client hoped for, what a record check said): sealed with the subject's key, the
    supporter's for eligibility, else the client's (by case). Decisions outlive their
    person in the decision log, where an erased person's reasons read as ""."""

    # A decision is written sealed up to four times (stored with its log entry, logged,
    # stored again once announced): the decisions last sealed are kept to seal each once.
    RECENT = 64

    def __init__(self, vault: Vault) -> None:
        self._sealers: dict[Person, Sealer] = {
            person: Sealer(vault, person, RulesDecision, topology.DECISIONS_BUCKET, forget=True)
            for person in ("client", "supporter")
        }
        # (org, decision id) -> the decision as given, and sealed
        self._recent: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}

    async def seal(self, org: str, decision: dict[str, Any]) -> dict[str, Any]:
        key = (org, decision.get("decision_id") or "")
        recent = self._recent.get(key)
        if recent is not None and recent[0] == decision:
            return recent[1]
        plain = copy.deepcopy(decision) if key[1] else decision  # sealing is in place
        sealed = await self._of(decision).seal(org, decision["subject_id"], decision)
        if key[1]:
            if len(self._recent) >= self.RECENT:
                self._recent.clear()
            self._recent[key] = (plain, sealed)
        return sealed

    async def open(self, org: str, decision: dict[str, Any]) -> dict[str, Any]:
        return await self._of(decision).open(org, decision["subject_id"], decision)

    def _of(self, decision: dict[str, Any]) -> Sealer:
        return self._sealers["supporter" if decision["kind"] == "eligibility" else "client"]


def dead_letters_sealer(vault: Vault) -> Sealer:
    """A dead letter's reason and original (a command as sent, with whatever it held) sealed
    with the key of its organisation's day (UTC): erased when dead letters of that day
    expire, after which they read as ""."""
    return Sealer(vault, "dead_letters", DeadLetter, topology.DEADLETTER_STREAM, forget=True)
