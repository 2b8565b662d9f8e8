"""Sessions held on the server, in the ``console_sessions`` bucket: signing out ends one for
good, all of an account's can be ended at once, and every console replica reads them.

The cookie holds ``<account_id>.<secret>``, 32 random bytes only the browser keeps; the bucket
keeps the secret's SHA-256 (key ``<account_id>.<hash>``) with when the session began, was last
used and ends, so a copy of the bucket opens no session. A session ends when signed out (its
key deleted), when every session of its account is ended (``alongside console sign-out``, or
disabling the account), after ``idle`` without a request (30 minutes by default), and
``LASTS`` (8 hours) after signing in whatever happens. The cookie is HTTP-only, same-site
strict, and Secure but in plain-HTTP development on a loopback address (``gate``).

The CSRF token is an HMAC of the secret: not stored either, and void with its session. A
request that changes something must carry it in ``X-CSRF-Token`` (a form, in ``csrf_token``):
a page from elsewhere can make the browser send the cookie, but cannot read the token.

Signing in has a token too (login CSRF): the sign-in page sets a random nonce in a cookie, and
its form carries an HMAC of it under a key derived from the deployment's master key; a sign-in
must bring both, so no other site can sign a browser in to an account of its choosing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from contracts.records import ConsoleSession
from runtime import topology
from runtime.changes import Change
from runtime.clock import Clock
from runtime.store import PlainStore, keys, read
from runtime.unit import UnitOfWork

COOKIE = "alongside_session"
SIGN_IN_COOKIE = "alongside_sign_in"
CSRF_HEADER = "X-CSRF-Token"
LASTS = timedelta(seconds=topology.CONSOLE_SESSION_LASTS_S)  # a working day
IDLE = timedelta(minutes=30)  # NIST SP 800-63B's reauthentication after inactivity, AAL2
# How often a session in use records that it was used: at most one write a minute.
TOUCH_EVERY = timedelta(minutes=1)
_COOKIE = re.compile(r"([0-9a-f]{32})\.([A-Za-z0-9_-]{43})")  # account id, secret
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")


def secure_name(name: str, secure: bool) -> str:
    """A Secure cookie is named ``__Host-``: browsers then take it only from HTTPS, for this
    host alone and the whole site, so no other subdomain can plant one."""
    return f"__Host-{name}" if secure else name


@dataclass(frozen=True)
class Session:
    account_id: str
    key: str  # in the bucket: <account_id>.<hash of the secret>
    csrf_token: str
    expires_at: datetime

    def allows(self, token: str | None) -> bool:
        return token is not None and _same(token, self.csrf_token)


def _same(sent: str, expected: str) -> bool:
    """In constant time, whatever was sent (compared as bytes: a str with other than ASCII
    in it would make ``compare_digest`` raise)."""
    return hmac.compare_digest(sent.encode(), expected.encode())


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Sessions:
    def __init__(
        self, kv: KeyValue, master_key: bytes, clock: Clock, idle: timedelta = IDLE
    ) -> None:
        derive = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"alongside console sign-in"
        )
        self._sign_in_key = derive.derive(master_key)
        self.kv = kv
        self.clock = clock
        self.idle = idle
        # Keys ``<account_id>.<sha256 of the secret>``; changed through the unit of work.
        self.unit = UnitOfWork(PlainStore(kv, ConsoleSession), clock, "alongside/console")

    async def start(self, account_id: str) -> tuple[str, Session]:
        """A new session: the cookie's value, and the session it stands for."""
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        record = ConsoleSession(
            account_id=account_id, started_at=now, seen_at=now, ends_at=now + LASTS
        )

        def started(current: ConsoleSession | None, _: None) -> Change[ConsoleSession]:
            if current is not None:  # 256 random bits met an existing session: never
                raise RuntimeError("a new session's key was taken")
            return Change(record)

        await self.unit.change(account_id, _secret_hash(secret), started)
        return f"{account_id}.{secret}", self._session(
            self._key(account_id, secret), secret, record
        )

    async def read(self, cookie: str | None) -> Session | None:
        """The session a cookie stands for, if it is held and has not ended; its use is
        recorded (at most once a minute), which keeps it from ending idle."""
        found = _COOKIE.fullmatch(cookie or "")
        if found is None:
            return None
        account_id, secret = found.groups()
        key = self._key(account_id, secret)
        record, _ = await read(self.kv, key, ConsoleSession)
        now = self.clock()
        if record is None or record.account_id != account_id:
            return None
        if now >= record.ends_at or now - record.seen_at >= self.idle:
            await self._forget(key)
            return None
        if now - record.seen_at >= TOUCH_EVERY:

            def touched(current: ConsoleSession | None, _: None) -> Change[ConsoleSession] | None:
                # Another request touched it first, or it was signed out: left as it is.
                if current is None or current.seen_at != record.seen_at:
                    return None
                return Change(current.model_copy(update={"seen_at": now}))

            await self.unit.change(account_id, _secret_hash(secret), touched)
        return self._session(key, secret, record)

    async def end(self, session: Session) -> None:
        """Signed out: the session is gone, and its cookie opens nothing any more."""
        await self._forget(session.key)

    async def end_all(self, account_id: str) -> int:
        """Every session of the account ended, on every replica at once; how many."""
        return await end_all(self.kv, account_id)

    # Signing in: a token that only a page of this console could have put in the form.

    def sign_in_nonce(self, cookie: str | None) -> str:
        """The browser's sign-in nonce (its cookie), or a new one."""
        return cookie if cookie and _NONCE.fullmatch(cookie) else secrets.token_urlsafe(16)

    def sign_in_token(self, nonce: str) -> str:
        return _b64(hmac.digest(self._sign_in_key, nonce.encode(), "sha256"))

    def sign_in_allows(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or not _NONCE.fullmatch(nonce):
            return False
        return _same(token, self.sign_in_token(nonce))

    def _session(self, key: str, secret: str, record: ConsoleSession) -> Session:
        csrf = _b64(hmac.digest(secret.encode(), b"alongside console csrf", "sha256"))
        return Session(record.account_id, key, csrf, record.ends_at)

    @staticmethod
    def _key(account_id: str, secret: str) -> str:
        return f"{account_id}.{_secret_hash(secret)}"

    async def _forget(self, key: str) -> None:
        await _forget(self.kv, key)


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def end_all(kv: KeyValue, account_id: str) -> int:
    """Every session of the account ended, on every console replica at once (``alongside
    console sign-out``, disabling it, a new password); how many there were."""
    ended = 0
    for key in await keys(kv, f"{account_id}.*"):  # (a purged key may still be listed)
        record, _ = await read(kv, key, ConsoleSession)
        await _forget(kv, key)
        ended += record is not None
    return ended


async def _forget(kv: KeyValue, key: str) -> None:
    with contextlib.suppress(KeyNotFoundError):
        await kv.purge(key)
