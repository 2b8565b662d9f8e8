"""Current state kept in KV: what intake stores and other services of the organisation read.

Key ``<org>.<id>`` in the bucket named in ``alongside/runtime/topology.py``.
These hold personal data; they never travel in events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.console import Role
from contracts.intake import (
    CLIENT_PARTY_ID,
    Method,
    Stage,
    SubmitIntake,
    SupporterProfile,
    SupportPerson,
    VettingEvidence,
)
from contracts.notifications import ChannelSettings, ContactPreferences, Person, Purpose
from contracts.privacy import PERSONAL, SENSITIVE
from contracts.scheduling import SchedulingPolicy


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupporterRecord(Record):
    supporter_id: str
    profile: SupporterProfile
    suspended: bool = False
    vetting: list[VettingEvidence] = []
    registered_at: datetime
    updated_at: datetime


class ConsentRecord(Record):
    party_id: str
    status: Literal["given", "withdrawn"]
    stages: list[Stage]
    on: date
    # Consent is to a particular support person: naming another one needs it again.
    support_person_ref: str


class CaseRecord(Record):
    case_id: str
    intake: SubmitIntake
    stage: Stage
    support_person: SupportPerson | None = None
    consents: dict[str, ConsentRecord] = {}
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None  # when it reached the stage closed: retention runs from it

    @property
    def party_ids(self) -> list[str]:
        return [CLIENT_PARTY_ID, *(p.party_id for p in self.intake.other_parties)]


MatchStatus = Literal[
    "awaiting_batch",  # part of an import: proposed together with the rest of its batch
    "proposed",  # proposals out, their slots held until they expire
    "waitlisted",  # nobody can serve the client now
    "expired",  # the client did not choose in time; the holds are released
    "accepted",  # the client chose; waiting for every party's consent
    "active",  # consented: scheduling takes over
    "paused",  # the supporter became ineligible: waits for a coordinator's review
    "completed",  # the funded service came to its end
    "refused",  # the client refused the service
    "erased",  # the client was erased: ids, dates and outcome stay, nothing of theirs
]


class Offer(Record):
    """A supporter proposed to a client, with the explanation the coordinator reads out."""

    supporter_id: str
    score: float
    # What the client and supporter share, in words: sensitive ("has been through prison").
    matched: Annotated[list[str], SENSITIVE]  # "speaks sm", "has been through tenancy dispute"
    unmatched: Annotated[list[str], SENSITIVE]  # "a maori cultural background": hoped for
    matched_on: list[str]  # field names only: what events say
    held_until: datetime

    @property
    def explanation(self) -> str:
        return explanation(self.matched, self.unmatched)


def explanation(matched: Sequence[str], unmatched: Sequence[str]) -> str:
    """One line a coordinator can read out to the client."""
    said = "; ".join(matched) or "meets every requirement"
    return f"{said}; you hoped for: {', '.join(unmatched)}" if unmatched else said


class CaseMatch(Record):
    """Matching's state of one case, key ``<org>.<case_id>`` in the ``matches`` bucket."""

    case_id: str
    status: MatchStatus
    round: int = 0  # proposal rounds so far
    proposals: list[Offer] = []
    supporter_id: str | None = None  # the chosen supporter, once accepted
    supporter_accepted: bool = False  # the chosen supporter said yes (their page)
    paused_from: Literal["accepted", "active"] | None = None  # while paused: what it resumes to
    excluded: list[str] = []  # declined or changed from: never proposed again
    # Which requirement left no one, in words that may say what the client asked for.
    waitlist_reason: Annotated[str | None, SENSITIVE] = None
    # Why the client declined their last proposals, in their words, if they said.
    declined_because: Annotated[str | None, SENSITIVE] = None
    import_batch: str | None = None
    # Holds the last change gave up; the change's flush removes them from the caseloads.
    released: list[str] = []
    since: datetime  # when the current status began
    # When the client asked (their intake): places go to the waiting in this order.
    asked_at: datetime | None = None
    updated_at: datetime

    @property
    def turn(self) -> datetime:
        return self.asked_at or self.since


class Caseload(Record):
    """Who holds a supporter's slots, key ``<org>.<supporter_id>`` in the ``caseloads`` bucket.

    Each case holds at most one slot: until a time while proposed, or without end
    (``None``) once the client accepted.
    """

    supporter_id: str
    holds: dict[str, datetime | None] = {}

    def taken(self, at: datetime) -> int:
        return sum(until is None or until > at for until in self.holds.values())

    @property
    def active_cases(self) -> int:
        return sum(until is None for until in self.holds.values())


SessionStatus = Literal[
    "proposed", "booked", "completed", "client_no_show", "supporter_no_show", "cancelled"
]


class Session(Record):
    session_id: str
    kind: Literal["initial_meeting", "regular", "extra"]
    start: datetime
    end: datetime
    method: Method
    status: SessionStatus
    confirmed_by: list[str] = []  # the initial meeting: who has confirmed its time
    cancel_reason: str | None = None
    purposes: list[str] = []  # an extra session: what it was booked for
    # An extra session: the booking's notes (never on an event).
    notes: Annotated[str | None, SENSITIVE] = None


class CaseSchedule(Record):
    """Scheduling's state of one case, key ``<org>.<case_id>`` in the ``schedules`` bucket."""

    case_id: str
    supporter_id: str
    status: Literal["arranging", "going_ahead", "suspended", "ended"]
    sessions: list[Session] = []
    method: Method | None = None  # agreed for regular sessions
    sessions_per_week_agreed: int = 1  # more than 1 only with both sides' recorded agreement
    service_ends_on: date | None = None  # the day after the last funded session
    # Why the schedule is suspended: when that passes, its cancelled sessions come back.
    suspended_because: str | None = None
    earlier_sessions: int = 0  # sessions with earlier supporters: ids keep counting
    # Sessions whose reminders the last change set or cleared (done when its outbox flushes).
    touched: list[str] = []
    updated_at: datetime

    def session(self, session_id: str) -> Session | None:
        return next((s for s in self.sessions if s.session_id == session_id), None)


class SupervisionSession(Record):
    session_id: str
    kind: Literal["supervision", "team_debrief"]
    start: datetime
    attended: bool = False


class SupporterSupervision(Record):
    """A supporter's supervision and team debriefs, key ``<org>.<supporter_id>``."""

    supporter_id: str
    sessions: list[SupervisionSession] = []
    updated_at: datetime


class GroupSession(Record):
    """A group peer-support session, key ``<org>.<group_id>`` in the ``groups`` bucket."""

    group_id: str
    facilitator_id: str
    start: datetime
    end: datetime
    method: Method
    capacity: int
    participants: list[str] = []  # case ids
    updated_at: datetime


class SchedulingSettings(Record):
    """An organisation's scheduling policy, key ``<org>.scheduling`` in ``organisations``."""

    policy: SchedulingPolicy
    updated_at: datetime


# Seven years, unless the organisation says otherwise (``alongside orgs audit``).
DEFAULT_AUDIT_DAYS = 2557
DEFAULT_RETENTION_DAYS = 2557  # seven years, as many schemes keep complaint files


class OrganisationRecord(Record):
    """An organisation registered to use this deployment, key ``<org>`` in ``registry``.
    Only an active one's commands, rules and imports are accepted."""

    org: str
    name: str
    status: Literal["active", "disabled"]
    registered_at: datetime
    updated_at: datetime
    # How long its decision log is kept (the audit period).
    audit_days: int = Field(default=DEFAULT_AUDIT_DAYS, ge=1, le=36500)
    # How long a closed case is kept before its client is erased (retention).
    retention_days: int = Field(default=DEFAULT_RETENTION_DAYS, ge=1, le=36500)


class CredentialRecord(Record):
    """An organisation's named credential, key ``<org>.<name>`` in ``credentials``
    (operators only). Public keys only: the secret went to whoever asked for it, once."""

    org: str
    name: str
    # What it may do (runtime/access.py, docs/subscribers.md); None: issued before kinds
    # (contracts 1.9), allowed every command of its organisation until issued again.
    kind: Literal["subscriber", "integration", "console"] | None = None
    # The key now valid, or None once revoked.
    public_key: str | None
    issued_at: datetime | None
    # Every earlier key of this credential, revoked, with when (Unix seconds).
    revoked: dict[str, int] = {}


class ConsoleAccount(Record):
    """Someone who signs in to the console, key ``<account_id>`` (a hash of the email) in
    ``console_accounts``, which only the console and operators read."""

    account_id: str
    email: Annotated[str, PERSONAL]
    name: Annotated[str, PERSONAL]
    password_hash: str  # argon2id, in its PHC string form
    roles: dict[str, Role]  # by organisation
    status: Literal["active", "disabled"]
    created_at: datetime
    updated_at: datetime


class ConsoleSession(Record):
    """A signed-in console session, key ``<account_id>.<hash>`` in ``console_sessions``: the
    hash (SHA-256) of the secret only the browser's cookie holds, never the secret. Gone
    once signed out; ended unused for the idle time, or at ``ends_at``."""

    account_id: str
    started_at: datetime
    seen_at: datetime  # its last request (written at most once a minute)
    ends_at: datetime


# Notifications ---------------------------------------------------------------------------

DeliveryStatus = Literal[
    "queued",  # due now or at ``due_at``
    "deferred",  # waits for the person's hours or for the channel to answer
    "sending",  # an attempt is under way (a crash leaves it to the sweep, same Message-ID)
    "sent",
    "bounced",  # refused for good by the mail server
    "failed",  # given up after the last attempt
    "withheld",  # never to be sent: ``why`` says which safeguard
]


class Invitation(Record):
    """A meeting's calendar invitation (iTIP): the same UID for every change of one meeting,
    a higher SEQUENCE each time (its cause's time in seconds)."""

    uid: str
    method: Literal["REQUEST", "CANCEL"]
    sequence: int
    start: datetime
    end: datetime
    kind: str  # initial_meeting, regular, extra, supervision
    by: Method | None = None


class Delivery(Record):
    """One message to one person, key ``<org>.<message_id>`` in ``deliveries``: what it is
    about and how it went. No address and no words: those are read and written when it is
    sent (the latest contact details; nothing to erase here)."""

    message_id: str
    person_key: str
    person: Person
    about: str  # the template's name
    cause_id: str
    essential: bool
    facts: dict[str, str] = {}  # what the template may say: times, kinds; never personal
    invitation: Invitation | None = None
    purpose: Purpose | None = None  # the personal link it carries, if any
    case_id: str | None = None  # the case the link is bound to (a supporter's: the client's)
    channel: str | None = None
    status: DeliveryStatus
    why: str | None = None
    attempts: int = 0
    due_at: datetime
    link_hash: str | None = None  # the link this message carried (minted per attempt)
    created_at: datetime
    updated_at: datetime


class PersonContact(Record):
    """A person's contact preferences and what they have been sent lately, key
    ``<org>.<person key>`` in ``contacts``."""

    person_key: str
    preferences: ContactPreferences = ContactPreferences()
    set_by: Literal["person", "coordinator"] | None = None
    # A coordinator set a safe-contact limit (do not contact, one channel, one window):
    # only a coordinator lifts it.
    safety_by_coordinator: Annotated[bool, SENSITIVE] = False
    waitlisted: bool = False  # their next proposals are "a place was found"
    links: list[str] = []  # hashes of their open links, for revoking them
    updated_at: datetime


class PersonalLink(Record):
    """A personal link, key ``_links.<hash>`` in ``links``: the SHA-256 of the token, never
    the token. Bound to one person, one case (or supporter) and one purpose."""

    org: str
    link_ref: str  # public reference: the hash's first 16 hex digits
    person: Person
    person_key: str
    case_id: str | None  # the case it is bound to (none: a supporter's own schedule)
    purpose: Purpose
    expires_at: datetime
    revoked: bool = False
    # A one-time code for actions that change consent: its hash, until when, tries left.
    code_hash: str | None = None
    code_until: datetime | None = None
    code_tries: int = 0
    code_sent_for: str | None = None  # the SendCode command that sent it: sent once
    code_checked_at: datetime | None = None  # a code was checked: the next action may go ahead
    created_at: datetime


class NotificationSettings(Record):
    """An organisation's channels (``ChannelSettings``), key ``<org>.settings``."""

    settings: ChannelSettings
    updated_at: datetime
