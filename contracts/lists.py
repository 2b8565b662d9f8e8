"""The console's lists, search and "needs attention", from its HTTP API: one page at a time.

Every list is read a page at a time with an opaque ``cursor``: the next page starts after
the last row of this one, by its sort order and then its id, so rows written meanwhile
never make a page repeat or skip a row that was already there. Lists carry ids, stages,
states and dates only, as ``contracts.overview`` does; only search answers with names,
to the coordinator who asked (docs/decisions/0030).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel

from contracts.envelope import OrgId

# What a case is at now, from its events, and what it waits on.
CaseState = Literal[
    "matching", "waiting", "proposed", "chosen", "active", "paused", "ended", "erased"
]
WaitsOn = Literal["supporter", "choice", "consent", "meeting", "review"]
LIST_LIMIT = 50  # rows in a page unless asked otherwise
LIST_LIMIT_MAX = 500


class CaseRow(BaseModel):
    case_id: str
    stage: str | None  # None: its intake is not in the stream (erased before it)
    state: CaseState
    since: datetime  # in this state since
    opened_at: datetime | None
    waits_on: list[WaitsOn]
    missing_party_ids: list[str] = []  # whose consent is missing, when it waits on consent
    supporter_id: str | None = None  # chosen or matched


class SupporterRow(BaseModel):
    supporter_id: str
    registered_at: datetime
    region: str
    eligible: bool | None  # None: not decided yet
    lapses_on: date | None
    suspended: bool
    caseload: int  # clients chosen them, and proposals holding a place
    caseload_cap: int
    room: int  # places left
    supervision_overdue_since: datetime | None  # the oldest unattended supervision past due


class ProposalRow(BaseModel):
    case_id: str
    round: int
    proposed_at: datetime
    days_unanswered: int
    supporters: int
    first_hold_ends: datetime


class CasesPage(BaseModel):
    org: OrgId
    total: int  # rows matching the filters, on every page
    items: list[CaseRow]
    next_cursor: str | None  # None: this is the last page


class SupportersPage(BaseModel):
    org: OrgId
    total: int
    items: list[SupporterRow]
    next_cursor: str | None


class ProposalsPage(BaseModel):
    org: OrgId
    total: int
    items: list[ProposalRow]
    next_cursor: str | None


class Found(BaseModel):
    person: Literal["client", "supporter"]
    subject_id: str
    display_name: str
    matched_on: Literal["reference", "name", "email", "phone"]


class SearchResults(BaseModel):
    """Clients (by their case) and supporters whose reference, name, email or phone
    matches every word searched for; names are read from the organisation's records."""

    org: OrgId
    total: int
    items: list[Found]
    next_cursor: str | None


AttentionKind = Literal[
    "match_paused",
    "hold_ending",
    "consent_missing",
    "meeting_unconfirmed",
    "waiting_long",
    "supervision_overdue",
    "vetting_lapsing",
]


class AttentionItem(BaseModel):
    """Something overdue or about to be: what, about whom, since or by when."""

    kind: AttentionKind
    org: OrgId
    case_id: str | None = None
    supporter_id: str | None = None
    due: datetime  # when it became (or becomes) overdue: the list is in this order
    what: str  # in plain words


class Attention(BaseModel):
    """What needs the signed-in coordinator in each of their organisations, most overdue
    first."""

    as_of: datetime
    total: int
    items: list[AttentionItem]
    next_cursor: str | None
