"""Personal links: a token that lets one person act on one case for one purpose, no account.

A token is 256 random bits and a signature (HMAC-SHA256, a key derived from the
deployment's master key) over the randomness and what the link is bound to: the person,
the purpose and when it ends. Only the SHA-256 of the token is stored (``PersonalLink``,
key ``_links.<hash>``): a copy of the bucket opens nothing, and a token changed in any
character matches no hash and no signature. The URL carries the token and nothing else:
no name, no organisation, no case.

One-time codes (for actions that change consent) are six digits sent to the same contact,
stored as an HMAC bound to the link, good for ``CODE_LASTS`` and ``CODE_TRIES`` tries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from contracts.records import PersonalLink

TOKEN_BYTES = 32
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$")
CODE_LASTS = timedelta(minutes=10)
CODE_TRIES = 5


def secret_of(master: bytes) -> bytes:
    """The links' signing key, derived from the deployment's master key."""
    derive = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"alongside personal links")
    return derive.derive(master)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signature(
    secret: bytes, nonce: str, person_key: str, case_id: str | None, purpose: str, ends: datetime
) -> str:
    bound = f"{nonce}|{person_key}|{case_id or ''}|{purpose}|{ends.isoformat()}".encode()
    return _b64(hmac.new(secret, bound, hashlib.sha256).digest()[:16])


def mint(
    secret: bytes, person_key: str, case_id: str | None, purpose: str, ends: datetime
) -> tuple[str, str]:
    """A new token and its hash (the only thing kept)."""
    nonce = _b64(secrets.token_bytes(TOKEN_BYTES))
    token = f"{nonce}.{_signature(secret, nonce, person_key, case_id, purpose, ends)}"
    return token, hash_of(token)


def hash_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    """Whether a string could be a token at all (checked before anything is looked up)."""
    return bool(_TOKEN.match(token))


def ref_of(token_hash: str) -> str:
    """A link's public reference (the access log, the console): part of the hash."""
    return token_hash[:16]


def signed(secret: bytes, token: str, link: PersonalLink) -> bool:
    """Whether the token was made for exactly this link."""
    nonce, _, signature = token.partition(".")
    expected = _signature(
        secret, nonce, link.person_key, link.case_id, link.purpose, link.expires_at
    )
    return hmac.compare_digest(signature, expected)


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def code_hash(secret: bytes, token_hash: str, code: str) -> str:
    return hmac.new(secret, f"{token_hash}|{code}".encode(), hashlib.sha256).hexdigest()
