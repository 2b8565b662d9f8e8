"""Keys that make a person's data erasable (crypto-shredding).

Each person (a client, by their case; a supporter) has a data key of their own, made the
first time something of theirs is sealed. It is kept wrapped (AES-GCM) under their
organisation's key, which is derived (HKDF) from the deployment's master key and never
stored, in the stream ``KEYS``, one message per person. A personal field is sealed with
the person's key wherever it is stored; erasing the person deletes that one message, and
JetStream overwrites a deleted message's bytes on disk, so every copy of their data (any
bucket, any revision, a dead letter, a backup) can never be read again. A tombstone then
stands in the key's place, so nothing new is sealed for someone erased.

Caveat: in a cluster, a stream's replication log also holds the wrapped key until the
log is compacted (snapshots); the wrapped key alone, without the master key, opens nothing.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from contracts import subjects
from runtime import topology

Person = Literal["client", "supporter"]
SEALED = "enc:v1:"  # the prefix of a sealed value
_NONCE = 12
_ERASED = b'{"erased": true}'


class Erased(Exception):
    """The person was erased: their data cannot be read, and nothing new is kept for them."""


def load_master_key(path: Path) -> bytes:
    """The deployment's master key (32 random bytes), made on first use, owner-only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) != 32:
        raise ValueError(f"{path}: a master key is 32 bytes, not {len(key)}")
    return key


class Vault:
    def __init__(self, js: JetStreamContext, master: bytes) -> None:
        self.js = js
        self._master = master

    def _org_key(self, org: str) -> AESGCM:
        derive = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                      info=b"alongside organisation key " + org.encode())  # fmt: skip
        return AESGCM(derive.derive(self._master))

    async def key(self, org: str, person: Person, person_id: str) -> bytes | None:
        """The person's data key; None if they have none yet. ``Erased`` if erased."""
        subject = subjects.person_key(org, person, person_id)
        try:
            msg = await self.js.get_last_msg(topology.KEYS_STREAM, subject, direct=True)
        except NotFoundError:
            return None
        if msg.data == _ERASED:
            raise Erased(f"{person} {person_id} of {org} was erased")
        assert msg.data is not None
        wrapped = msg.data
        return self._org_key(org).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], subject.encode())

    async def key_or_new(self, org: str, person: Person, person_id: str) -> bytes:
        """The person's data key, made now if they have none (once, whoever races)."""
        found = await self.key(org, person, person_id)
        if found is not None:
            return found
        subject = subjects.person_key(org, person, person_id)
        key, nonce = AESGCM.generate_key(bit_length=256), secrets.token_bytes(_NONCE)
        wrapped = nonce + self._org_key(org).encrypt(nonce, key, subject.encode())
        try:
            await self.js.publish(subject, wrapped, stream=topology.KEYS_STREAM,
                                  headers={"Nats-Expected-Last-Subject-Sequence": "0"})  # fmt: skip
        except APIError:  # someone made it first: theirs is the key
            again = await self.key(org, person, person_id)
            assert again is not None
            return again
        return key

    async def erase(self, org: str, person: Person, person_id: str) -> bool:
        """Destroy the person's key for good; True if there was one to destroy."""
        subject = subjects.person_key(org, person, person_id)
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
        await self.js.publish(subject, _ERASED, stream=topology.KEYS_STREAM)
        return msg is not None


def seal(key: bytes, value: Any, context: str) -> str:
    """``value`` (anything JSON) as one string only ``key`` opens, bound to ``context`` (the
    field's place: a sealed value moved elsewhere does not open)."""
    nonce = secrets.token_bytes(_NONCE)
    plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    sealed = nonce + AESGCM(key).encrypt(nonce, plain, context.encode())
    return SEALED + base64.b64encode(sealed).decode()


def open_sealed(key: bytes, sealed: str, context: str) -> Any:
    """What ``seal`` sealed; ``ValueError`` if it was sealed with another key or context."""
    if not sealed.startswith(SEALED):
        raise ValueError("not a sealed value")
    raw = base64.b64decode(sealed[len(SEALED) :])
    try:
        plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
    except InvalidTag:
        raise ValueError("sealed with another key, or for another place") from None
    return json.loads(plain)
