"""The console's HTTP API: what it takes and gives besides the commands themselves.

A command's request body is the command's own payload (its model in the catalogue), sent to
``POST /api/orgs/{org}/commands/{Type}``; the answer is the service's reply. This module
holds the rest: signing in, who is signed in, and the problem details (RFC 9457) every
refusal is given as.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts.envelope import OrgId
from contracts.privacy import PERSONAL
from contracts.replies import FieldError

# A coordinator runs their organisation's peer support; a supervisor also answers for its
# people's data (exports, erasure) and its scheduling settings; an operator runs the
# deployment, for each organisation they hold.
Role = Literal["coordinator", "supervisor", "operator"]
# Neither "@" nor white space, spelled out: ``\s`` means other characters to the document's
# readers (ECMA-262 patterns) than to pydantic (Rust's White_Space, which this is).
_PART = r"[^@\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
EMAIL_PATTERN = rf"^{_PART}@{_PART}\.{_PART}$"
Email = Annotated[str, PERSONAL, Field(pattern=EMAIL_PATTERN, max_length=200)]


class SignIn(BaseModel):
    email: Email
    password: str = Field(min_length=1, max_length=1000)


class SignedIn(BaseModel):
    """Who is signed in, and the token every request that changes something must carry in
    its ``X-CSRF-Token`` header (the session itself is in an HTTP-only cookie)."""

    email: Email
    name: Annotated[str, PERSONAL]
    roles: dict[OrgId, Role]
    csrf_token: str
    expires_at: datetime


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``): each failing field of a
    refused command with the reason, as the service gave them."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []
    command_id: str | None = None
    retry_after_s: int | None = None  # also the Retry-After header: when to try again


Viewed = Literal["case", "supporter", "decision"]


class AccessLogEntry(BaseModel):
    """One view of a case, a supporter or why a decision was made: who (the account's
    source), when, which."""

    viewed: Viewed
    subject_id: str
    viewed_by: str
    viewed_at: datetime
    command_id: str


class AccessLog(BaseModel):
    """Every view of the organisation's cases and supporters, oldest first."""

    org: OrgId
    entries: list[AccessLogEntry]
