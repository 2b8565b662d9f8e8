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
from runtime.changes import Change
from runtime.clock import Clock
from runtime.store import PlainStore, read
from runtime.unit import UnitOfWork

_HASHER = PasswordHasher()  # argon2id, the library's defaults (RFC 9106's second choice)
# Verified against when no account has the email, so that a wrong email takes as long to
# refuse as a wrong password (no way to learn who has an account).
_NOBODY = _HASHER.hash("no account has this email")


class AccountError(ValueError):
    """An account cannot be made or changed as asked."""


def account_id(email: str) -> str:
    """The account's key: emails are not valid KV keys, and need not be spelled in one."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def _own_key(_: str, account: str) -> str:
    return account  # an account is nobody's organisation's: its key is the account alone


class Accounts:
    def __init__(self, kv: KeyValue, clock: Clock) -> None:
        self.kv = kv
        self.clock = clock
        # Changed through the unit of work; an account's change announces nothing.
        self.unit = UnitOfWork(PlainStore(kv, ConsoleAccount, _own_key), clock, "alongside/console")

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

        async def hashed(_: ConsoleAccount | None) -> str:
            return await asyncio.to_thread(_HASHER.hash, password)

        def made(current: ConsoleAccount | None, password_hash: str) -> Change[ConsoleAccount]:
            now = self.clock()
            account = ConsoleAccount(
                account_id=key,
                email=email.strip(),
                name=name,
                password_hash=password_hash,
                roles=roles,
                status="active",
                created_at=current.created_at if current else now,
                updated_at=now,
            )
            return Change(account)

        outcome = await self.unit.change("", key, made, gather=hashed)
        assert outcome.record is not None
        return outcome.record

    async def disable(self, email: str) -> ConsoleAccount:
        """The account can no longer sign in, and its sessions end at their next request."""

        def disabled(current: ConsoleAccount | None, _: None) -> Change[ConsoleAccount]:
            if current is None:
                raise AccountError(f"no account for {email}")
            update = {"status": "disabled", "updated_at": self.clock()}
            return Change(current.model_copy(update=update))

        outcome = await self.unit.change("", account_id(email), disabled)
        assert outcome.record is not None
        return outcome.record

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
