"""Organisations' credentials: issued, rotated and revoked while everything runs.

A credential is a NATS user of the account, confined to one organisation
(``access.org_permissions``). Its secret goes to whoever asked, once; the ``credentials``
bucket keeps only public keys and what was revoked. A revocation re-signs the account
with every revoked key listed and pushes it to the running server, which refuses those
users from then on and drops their connections at once: no restart of the server or of
any service.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from nats.aio.client import Client
from nats.js.kv import KeyValue

from contracts.records import CredentialRecord
from runtime.access import AccessError, AuthDir, Issued, org_permissions, org_user
from runtime.clock import Clock
from runtime.store import Conflict, compare_and_set, keys, read

# Where the system account takes a new version of an account (operator mode, full resolver).
CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"


class Credentials:
    def __init__(self, kv: KeyValue, auth: AuthDir, system: Client, clock: Clock) -> None:
        self.kv = kv
        self.auth = auth
        self.system = system
        self.clock = clock

    async def issue(self, org: str, name: str) -> Issued:
        """A new credential for ``org`` called ``name``; one of that name issued before is
        revoked (rotation: hand out the new one, and the old stops working)."""
        now = self._now()
        key = f"{org}.{name}"
        current, revision = await self._get(key)
        revoked = dict(current.revoked) if current else {}
        if current is not None and current.public_key is not None:
            revoked[current.public_key] = now
        issued = self.auth.issue(org_user(org, name), org_permissions(org), now)
        record = CredentialRecord(
            org=org, name=name, public_key=issued.public_key,
            issued_at=datetime.fromtimestamp(now, UTC), revoked=revoked,
        )  # fmt: skip
        await self._save(key, record, revision)
        if current is not None and current.public_key is not None:
            await self.push()
        return issued

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
            await self.push()
        return done

    async def all(self, org: str = "*") -> list[CredentialRecord]:
        found = []
        for key in await keys(self.kv, f"{org}.*"):
            record, _ = await self._get(key)
            if record is not None:
                found.append(record)
        return found

    async def push(self) -> None:
        """The account, re-signed with every revocation, to the running server(s)."""
        revocations: dict[str, int] = {}
        for record in await self.all():
            revocations.update(record.revoked)
        token = self.auth.account_jwt(revocations, self._now())
        reply = await self.system.request(CLAIMS_UPDATE, token.encode(), timeout=5.0)
        answer = json.loads(reply.data)
        if "error" in answer:
            raise AccessError(f"the server refused the account update: {answer['error']}")

    async def _get(self, key: str) -> tuple[CredentialRecord | None, int]:
        return await read(self.kv, key, CredentialRecord)

    async def _save(self, key: str, record: CredentialRecord, revision: int) -> None:
        try:
            await compare_and_set(self.kv, key, record.model_dump_json().encode(), revision)
        except Conflict:
            raise AccessError(f"credential {key} changed meanwhile; try again") from None

    def _now(self) -> int:
        return int(self.clock().timestamp())
