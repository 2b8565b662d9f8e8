"""Organisations' credentials: issued, rotated and revoked while everything runs.

A credential is a NATS user of the account, confined to one organisation and to its kind's
job (``access.org_permissions``: a subscriber's feed, an integration's intake, the
console's). Its secret goes to whoever asked, once; the ``credentials`` bucket keeps only
public keys, kinds and what was revoked. A revocation re-signs the account
with every revoked key listed and pushes it to the running server, which refuses those
users from then on and drops their connections at once: no restart of the server or of
any service.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from contracts import subjects
from contracts.records import CredentialRecord
from runtime.access import (
    AccessError,
    AuthDir,
    CredentialKind,
    Issued,
    credential_name,
    org_permissions,
    org_user,
)
from runtime.clock import Clock
from runtime.store import Conflict, compare_and_set, keys, read

# Where the system account takes a new version of an account (operator mode, full resolver).
CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"


class Credentials:
    """``js``: the operator's, which makes each reader's durable consumer."""

    def __init__(
        self, kv: KeyValue, js: JetStreamContext, auth: AuthDir, system: Client, clock: Clock
    ) -> None:
        self.kv = kv
        self.js = js
        self.auth = auth
        self.system = system
        self.clock = clock

    async def issue(self, org: str, kind: CredentialKind, name: str | None = None) -> Issued:
        """A new credential of ``kind`` for ``org`` (the console's is named ``console``; any
        other needs a ``name``); one of that name issued before is revoked (rotation: hand
        out the new one, and the old stops working). A subscriber or an integration reads
        through a durable consumer of that name, made here if it is not there yet (so a
        rotated credential goes on where the old one stopped)."""
        name = credential_name(kind, name)
        now = self._now()
        key = f"{org}.{name}"
        current, revision = await self._get(key)
        revoked = dict(current.revoked) if current else {}
        if current is not None and current.public_key is not None:
            revoked[current.public_key] = now
        if kind != "console":
            await self._feed(org, name)
        issued = self.auth.issue(
            org_user(org, kind, name), org_permissions(org, kind, name), now, org=org
        )
        record = CredentialRecord(
            org=org,
            name=name,
            kind=kind,
            public_key=issued.public_key,
            issued_at=datetime.fromtimestamp(now, UTC),
            revoked=revoked,
        )
        await self._save(key, record, revision)
        await self.push(org)  # its account, made or brought up to date, and any revocation
        return issued

    async def _feed(self, org: str, name: str) -> None:
        """The durable pull consumer a reader credential reads its organisation's events
        through, from the first; the operator's to make, never the reader's."""
        stream = subjects.org_events_stream(org)
        try:
            await self.js.consumer_info(stream, name)
        except NotFoundError:
            await self.js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=name,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    description=f"{org}'s credential {name}",
                ),
            )

    async def revoke(self, org: str, name: str | None = None) -> list[str]:
        """Revoke ``org``'s credential ``name`` (every one of ``org``'s, without a name); the
        names revoked."""
        now = self._now()
        done = []
        for key in await keys(self.kv, f"{org}.{name or '*'}"):
            current, revision = await self._get(key)
            if current is None or current.public_key is None:
                continue
            revoked = {**current.revoked, current.public_key: now}
            await self._save(
                key,
                current.model_copy(
                    update={"public_key": None, "issued_at": None, "revoked": revoked}
                ),
                revision,
            )
            done.append(current.name)
        if done:
            await self.push(org)
        return done

    async def all(self, org: str = "*") -> list[CredentialRecord]:
        found = []
        for key in await keys(self.kv, f"{org}.*"):
            record, _ = await self._get(key)
            if record is not None:
                found.append(record)
        return found

    async def push(self, org: str) -> None:
        """``ALONGSIDE`` (its exports, and the revocations of credentials issued in it before
        organisations had accounts) and ``org``'s own account, each re-signed with its
        revocations, to the running server(s)."""
        legacy: dict[str, int] = {}
        own: dict[str, int] = {}
        for record in await self.all():
            if record.kind is None:
                legacy.update(record.revoked)
            if record.org == org:
                own.update(record.revoked)
        now = self._now()
        await self._update(self.auth.account_jwt(legacy | own, now))
        await self._update(self.auth.org_account_jwt(org, own, now))

    async def _update(self, token: str) -> None:
        reply = await self.system.request(CLAIMS_UPDATE, token.encode(), timeout=5.0)
        answer = json.loads(reply.data)
        if "error" in answer:
            raise AccessError(f"the server refused the account update: {answer['error']}")

    async def _get(self, key: str) -> tuple[CredentialRecord | None, int]:
        return await read(self.kv, key, CredentialRecord)

    async def _save(self, key: str, record: CredentialRecord, revision: int) -> None:
        value = record.model_dump_json().encode()
        if isinstance(await compare_and_set(self.kv, key, value, revision), Conflict):
            raise AccessError(f"credential {key} changed meanwhile; try again")

    def _now(self) -> int:
        return int(self.clock().timestamp())
