"""Who may sign in to the console: one account per email in the ``console_accounts``
bucket, its password hashed with argon2id, its roles by organisation."""

from __future__ import annotations

import asyncio
import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from nats.js.kv import KeyValue

from contracts.console import Role
from contracts.records import ConsoleAccount
from runtime.clock import Clock
from runtime.store import Conflict, compare_and_set, read

_HASHER = PasswordHasher()  # argon2id, the library's defaults (RFC 9106's second choice)
# Verified against when no account has the email, so that a wrong email takes as long to
# refuse as a wrong password (no way to learn who has an account).
_NOBODY = _HASHER.hash("no account has this email")


class AccountError(ValueError):
    """An account cannot be made or changed as asked."""


def account_id(email: str) -> str:
    """The account's key: emails are not valid KV keys, and need not be spelled in one."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class Accounts:
    def __init__(self, kv: KeyValue, clock: Clock) -> None:
        self.kv = kv
        self.clock = clock

    async def get(self, account: str) -> ConsoleAccount | None:
        found, _ = await read(self.kv, account, ConsoleAccount)
        return found

    async def put(
        self, email: str, name: str, password: str, roles: dict[str, Role]
    ) -> ConsoleAccount:
        """Make the account, or give it a new password, name and roles."""
        if not roles:
            raise AccountError("an account needs a role in at least one organisation")
        if len(password) < 12:
            raise AccountError("password: at least 12 characters")
        key = account_id(email)
        current, revision = await read(self.kv, key, ConsoleAccount)
        now = self.clock()
        hashed = await asyncio.to_thread(_HASHER.hash, password)
        account = ConsoleAccount(
            account_id=key,
            email=email.strip(),
            name=name,
            password_hash=hashed,
            roles=roles,
            status="active",
            created_at=current.created_at if current else now,
            updated_at=now,
        )
        await self._save(key, account, revision)
        return account

    async def _save(self, key: str, account: ConsoleAccount, revision: int) -> None:
        value = account.model_dump_json().encode()
        if isinstance(await compare_and_set(self.kv, key, value, revision), Conflict):
            raise AccountError(f"the account {account.email} changed meanwhile; try again")

    async def disable(self, email: str) -> ConsoleAccount:
        """The account can no longer sign in, and its sessions end at their next request."""
        key = account_id(email)
        current, revision = await read(self.kv, key, ConsoleAccount)
        if current is None:
            raise AccountError(f"no account for {email}")
        disabled = current.model_copy(update={"status": "disabled", "updated_at": self.clock()})
        await self._save(key, disabled, revision)
        return disabled

    async def signing_in(self, email: str, password: str) -> ConsoleAccount | None:
        """The active account with this email and password; None otherwise, taking as long
        whichever was wrong."""
        account = await self.get(account_id(email))
        hashed = account.password_hash if account else _NOBODY
        try:
            await asyncio.to_thread(_HASHER.verify, hashed, password)
        except (VerificationError, InvalidHashError):
            return None
        if account is None or account.status != "active":
            return None
        return account
