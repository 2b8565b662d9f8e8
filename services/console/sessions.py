"""Sessions in signed cookies, each with the CSRF token the client sends back in a header.

The cookie holds the account id, the token and when the session ends, signed with a key
derived from the deployment's master key (so every console replica reads every session);
it is HTTP-only and same-site strict. A request that changes something must also carry the
token in ``X-CSRF-Token``: a page from elsewhere can make the browser send the cookie, but
cannot read the token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeSerializer

from runtime.clock import Clock

COOKIE = "alongside_session"
CSRF_HEADER = "X-CSRF-Token"
LASTS = timedelta(hours=8)  # a working day


@dataclass(frozen=True)
class Session:
    account_id: str
    csrf_token: str
    expires_at: datetime

    def allows(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token)


class Sessions:
    def __init__(self, master_key: bytes, clock: Clock) -> None:
        derive = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                      info=b"alongside console sessions")  # fmt: skip
        self._signer = URLSafeSerializer(derive.derive(master_key), salt="session")
        self.clock = clock

    def start(self, account_id: str) -> tuple[str, Session]:
        """A new session: the cookie's value, and the session it stands for."""
        session = Session(account_id, secrets.token_urlsafe(32), self.clock() + LASTS)
        value = self._signer.dumps([account_id, session.csrf_token,
                                    session.expires_at.isoformat()])  # fmt: skip
        return value, session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie stands for, if it is ours and has not ended."""
        if not cookie:
            return None
        try:
            account_id, token, expires = self._signer.loads(cookie)
        except (BadSignature, ValueError, TypeError):
            return None
        session = Session(str(account_id), str(token), datetime.fromisoformat(str(expires)))
        return session if session.expires_at > self.clock() else None
