"""A case's timeline, from the console's HTTP API: every event about one case, oldest first,
in plain words: when, what happened, who did it (by role), and why where the event says.

Folded from the organisation's own events (ids, dates and codes, never a name or a reason a
person gave), so an erased case's timeline still holds exactly what it held: ids and dates.
Why a rules decision came out as it did is about the person: the timeline names the
decision, and only to the roles that may read it (``GET /api/orgs/{org}/decisions/{id}``).
Reading a timeline is a view of the case, recorded in the access log like any other.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.envelope import OrgId


class TimelineEntry(BaseModel):
    """One event about the case."""

    at: datetime = Field(description="When it happened: when its event was published")
    what: str = Field(description="What happened, in plain words (ids, never names)")
    who: str = Field(description="Who did it, by role: the client, a coordinator, the service")
    why: str | None = Field(default=None, description="Why, where the event itself says")
    decision_id: str | None = Field(
        default=None,
        description="The rules decision behind it, whose reasons are in the decision log; "
        "given only to roles that may read why a decision was made",
    )
    viewed_by: str | None = Field(
        default=None,
        description="For a view or an export: the account that read it (the access log); "
        "given only to roles that may read the access log",
    )
    event: str = Field(description="The type of the event it comes from")


class CaseTimeline(BaseModel):
    """Every event about one case, oldest first."""

    org: OrgId
    case_id: str
    erased: bool = Field(description="The client was erased: only ids and dates remain")
    entries: list[TimelineEntry]
