"""What a coordinator sees at a glance, from the console's HTTP API: today's work lists and
each month's figures for one organisation.

Both are folded from the organisation's own events (ids, stages, times and outcomes, never
a name or a reason a person gave), so a list shows who to look at, not what is held about
them: opening a case or a supporter is a view, and every view is in the access log.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from contracts.envelope import OrgId
from contracts.rules import RulesetRef

# Each list on its own is cut to the most urgent ``limit`` rows; ``counts`` says how many
# there are in all.
DEFAULT_LIMIT = 100


class Waiting(BaseModel):
    """A waitlisted client: the constraint that left no supporter, and since when."""

    case_id: str
    constraint: str
    since: datetime


class ToReview(BaseModel):
    """A match paused because its supporter became ineligible: a coordinator decides whether
    it goes on (once they are eligible again) or the client gets someone else."""

    case_id: str
    supporter_id: str
    since: datetime


class Hold(BaseModel):
    supporter_id: str
    held_until: datetime


class AwaitingChoice(BaseModel):
    """Proposals out to a client; the first hold to end is when they are chased."""

    case_id: str
    round: int
    proposed_at: datetime
    holds: list[Hold]
    first_hold_ends: datetime


class ConsentMissing(BaseModel):
    """A case whose consent for its stage is not active, and whose consent is missing."""

    case_id: str
    stage: str
    status: Literal["pending", "suspended"]
    missing_party_ids: list[str]
    since: datetime


class MeetingToConfirm(BaseModel):
    case_id: str
    supporter_id: str
    session_id: str
    start: datetime
    proposed_by: str


class ScheduledSession(BaseModel):
    case_id: str
    supporter_id: str
    session_id: str
    kind: str
    start: datetime
    outcome: str | None = None  # completed, client_no_show, supporter_no_show; None: not yet


class VettingLapse(BaseModel):
    supporter_id: str
    lapses_on: date
    days_left: int


class SupervisionDue(BaseModel):
    """A supervision or team debrief booked within the week ahead, or past and not attended."""

    supporter_id: str
    session_id: str
    kind: Literal["supervision", "team_debrief"]
    start: datetime
    overdue: bool


class Today(BaseModel):
    """An organisation's work lists now, most urgent first."""

    org: OrgId
    as_of: datetime
    time_zone: str
    week_starts: date  # Monday, in the organisation's time zone
    counts: dict[str, int]  # each list's whole length, by its name below
    waiting: list[Waiting]
    matches_to_review: list[ToReview] = []  # oldest first
    awaiting_choice: list[AwaitingChoice]
    consents_missing: list[ConsentMissing]
    meetings_to_confirm: list[MeetingToConfirm]
    sessions_this_week: list[ScheduledSession]
    vetting_lapsing: list[VettingLapse]  # eligible supporters lapsing within 30 days
    supervision_due: list[SupervisionDue]


class Durations(BaseModel):
    """Hours, over the cases that reached the point in the month."""

    cases: int
    median_hours: float | None = None
    p90_hours: float | None = None


class MonthReport(BaseModel):
    """One month of one organisation, in its time zone. Each figure counts what happened in
    the month (a proposal answered, a session that was due), whenever its case began."""

    org: OrgId
    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    time_zone: str
    intakes: int
    intake_to_first_proposal: Durations
    intake_to_active_match: Durations
    proposals_accepted: int
    proposals_declined: int
    proposals_expired: int
    acceptance_rate: float | None  # accepted of all answered or expired rounds
    changes_of_supporter: int
    refusals: int  # service refused before a match was active
    drop_outs: int  # service refused after a match was active
    sessions_booked: int  # due in the month and not cancelled
    sessions_held: int
    client_no_shows: int
    supporter_no_shows: int
    supervision_due: int  # supervisions and debriefs due in the month, so far
    supervision_attended: int
    supervision_compliance: float | None
    waitlist_size: int  # at the month's end, or now for this month
    waitlist_median_days: float | None
    waitlist_oldest_days: float | None


class LiveRuleset(BaseModel):
    ruleset: RulesetRef
    revision: int
    published_at: datetime
    rolled_back_to: str | None = None
    labels: dict[str, str] = {}  # each rule's plain words by its id


class RulesHistory(BaseModel):
    """Each kind's live ruleset and every publication before it, newest first."""

    org: OrgId
    live: list[LiveRuleset]
    history: list[LiveRuleset]

    @property
    def labels(self) -> dict[str, str]:
        """The live rules' labels by ``<kind>.<rule>`` (``eligibility.caseload-full``), as a
        refusal names a rule after ``rules.``."""
        return {
            f"{live.ruleset.kind.value}.{rule}": label
            for live in self.live
            for rule, label in live.labels.items()
        }
