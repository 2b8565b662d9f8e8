"""How each event about a case is told on its timeline: one small function per event type,
found by the event's type, making an ``Entry``; ``TOLD`` lists those types. Pure.

Who did something is the role that sends the command behind the event (contracts/), or the
service that decided on its own. An entry's words are a template shared by every entry of
its kind, filled in when read (so a session's time is told in the organisation's time zone
as it is then): an organisation may hold 10,000 cases of some 30 events each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from contracts.envelope import Event
from contracts.intake import (
    CLIENT_PARTY_ID,
    CaseStageChanged,
    ClientErased,
    ConsentGiven,
    ConsentWithdrawn,
    IntakeReceived,
    PersonDataExported,
    SupportPersonNamed,
)
from contracts.matching import (
    ClientWaitlisted,
    MatchActivated,
    MatchEnded,
    MatchPaused,
    MatchProposed,
    MatchResumed,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    ProposalsWithdrawn,
    ServiceRefused,
    SupporterAgreed,
)
from contracts.notifications import (
    NotificationBounced,
    NotificationDeferred,
    NotificationFailed,
    NotificationSent,
    NotificationWithheld,
)
from contracts.rules import ConsentDecided, Kind, MatchingPolicyDecided
from contracts.scheduling import (
    FrequencyAgreed,
    GroupParticipantJoined,
    InitialMeetingProposed,
    ServiceEnded,
    ServiceExtended,
    SessionAttended,
    SessionBooked,
    SessionCancelled,
    SessionReminderDue,
    SessionRescheduled,
    SessionsResumed,
    SessionsScheduled,
)
from contracts.views import CaseViewed, DecisionViewed
from services.console.labels import plain
from services.console.timeline_reasons import REASONS

# Who, by role.
CLIENT = "the client"
PARTY = "a party"
SUPPORTER = "the supporter"
BOTH = "the client and the supporter"
COORDINATOR = "a coordinator"
SUPERVISOR = "a supervisor"
OPERATOR = "an operator"
INTAKE = "a coordinator or the intake form"  # an integration may submit intakes too
CONSOLE_USER = "someone signed in to the console"
RULES = "the rules service"
MATCHING = "the matching service"
SCHEDULING = "the scheduling service"
SERVICE = "the service"

_CONSOLE = "alongside/console/"  # a command's source names the account that sent it
_MOMENT = "%a %d %b %Y, %H:%M"  # as the pages' ``when`` shows a moment
_DAY = "%a %d %b %Y"

Fact = str | int | date | datetime | tuple[str, ...]


@dataclass(slots=True, frozen=True)
class Entry:
    """One event about a case: ``what`` is a template shared by its kind, a ``{}`` for each
    of ``facts``, filled in when read."""

    at: datetime
    event: str
    what: str
    facts: tuple[Fact, ...]
    who: str
    why: str | None = None
    decision_id: str | None = None  # the decision log's: for those who may read it
    viewed_by: str | None = None  # the access log's: for those who may read it

    def words(self, zone: ZoneInfo) -> str:
        return self.what.format(*(_told(fact, zone) for fact in self.facts))


Told = tuple[str, Entry] | None  # the case it is about, and its entry; None: not a case's
E = TypeVar("E", bound=Event)
Teller = Callable[[E, datetime], Told]
_TELLERS: dict[type[Event], Teller[Any]] = {}  # each event type's, registered by ``_tells``


def _told(fact: Fact, zone: ZoneInfo) -> str:
    if isinstance(fact, datetime):
        return fact.astimezone(zone).strftime(_MOMENT)
    if isinstance(fact, date):
        return fact.strftime(_DAY)
    if isinstance(fact, tuple):
        return ", ".join(fact) or "none"
    return str(fact)


def _tells(kind: type[E]) -> Callable[[Teller[E]], Teller[E]]:
    """Registers the decorated function as how an event of ``kind`` is told."""

    def register(teller: Teller[E]) -> Teller[E]:
        _TELLERS[kind] = teller
        return teller

    return register


def _entry(
    at: datetime,
    event: Event,
    what: str,
    *facts: Fact,
    who: str,
    why: str | None = None,
    decision_id: str | None = None,
    viewed_by: str | None = None,
) -> Entry:
    return Entry(at, event.type_name, what, facts, who, why, decision_id, viewed_by)


def _reason(code: str) -> str:
    return REASONS.get(code) or plain(code, "reason")


def _party(party_id: str) -> tuple[str, str]:
    """Who a party is, in words, and by role."""
    if party_id == CLIENT_PARTY_ID:
        return CLIENT, CLIENT
    return f"the other party {party_id}", PARTY


def _reader(source: str) -> str:
    """Who sent a read, by role: the console names its account; the CLI is an operator's."""
    return CONSOLE_USER if source.startswith(_CONSOLE) else OPERATOR


def tell(event: Event, at: datetime) -> Told:
    """The case ``event`` is about and its entry (``at`` in UTC); None if about no case."""
    teller = _TELLERS.get(type(event))
    return teller(event, at) if teller is not None else None


# Intake ------------------------------------------------------------------------------


@_tells(IntakeReceived)
def _intake_received(e: IntakeReceived, at: datetime) -> Told:
    stage = plain(e.stage, "stage")
    if not e.party_ids:
        return e.case_id, _entry(at, e, "Intake received at stage {}", stage, who=INTAKE)
    parties = tuple(e.party_ids)
    what = "Intake received at stage {}; the other parties: {}"
    return e.case_id, _entry(at, e, what, stage, parties, who=INTAKE)


@_tells(CaseStageChanged)
def _stage_changed(e: CaseStageChanged, at: datetime) -> Told:
    was, now = plain(e.from_stage, "stage"), plain(e.to_stage, "stage")
    return e.case_id, _entry(at, e, "Stage changed from {} to {}", was, now, who=COORDINATOR)


@_tells(SupportPersonNamed)
def _support_person_named(e: SupportPersonNamed, at: datetime) -> Told:
    if e.supporter_id is not None:
        what = "Support person named: the peer supporter {}"
        return e.case_id, _entry(at, e, what, e.supporter_id, who=COORDINATOR)
    named = "a family member" if e.kind == "family" else f"a {e.kind}"
    return e.case_id, _entry(at, e, "Support person named: {}", named, who=COORDINATOR)


@_tells(ConsentGiven)
def _consent_given(e: ConsentGiven, at: datetime) -> Told:
    party, role = _party(e.party_id)
    stages = tuple(plain(stage, "stage") for stage in e.stages)
    what = "Consent given by {} for {} (on {})"
    return e.case_id, _entry(at, e, what, party, stages, e.given_on, who=role)


@_tells(ConsentWithdrawn)
def _consent_withdrawn(e: ConsentWithdrawn, at: datetime) -> Told:
    party, role = _party(e.party_id)
    what = "Consent withdrawn by {} (on {})"
    return e.case_id, _entry(at, e, what, party, e.withdrawn_on, who=role)


@_tells(PersonDataExported)
def _exported(e: PersonDataExported, at: datetime) -> Told:
    if e.person != "client":
        return None
    who = SUPERVISOR if e.requested_by.startswith(_CONSOLE) else OPERATOR  # a supervisor's
    what = "Everything held about the client was exported"
    return e.subject_id, _entry(at, e, what, who=who, viewed_by=e.requested_by)


@_tells(ClientErased)
def _client_erased(e: ClientErased, at: datetime) -> Told:
    what = "The client was erased: only ids and dates are kept"
    if e.requested_by.endswith("/retention"):
        why = "the case's retention period ended"
        return e.case_id, _entry(at, e, what, who=SERVICE, why=why)
    who = SUPERVISOR if e.requested_by.startswith(_CONSOLE) else OPERATOR
    return e.case_id, _entry(at, e, what, who=who)


@_tells(CaseViewed)
def _case_viewed(e: CaseViewed, at: datetime) -> Told:
    who = _reader(e.viewed_by)
    return e.case_id, _entry(at, e, "The case was viewed", who=who, viewed_by=e.viewed_by)


@_tells(DecisionViewed)
def _decision_viewed(e: DecisionViewed, at: datetime) -> Told:
    if e.kind == Kind.ELIGIBILITY:  # about a supporter, not a case
        return None
    what = "Why a {} decision was made was read"
    return e.subject_id, _entry(
        at,
        e,
        what,
        plain(e.kind, "decision"),
        who=_reader(e.viewed_by),
        decision_id=e.decision_id,
        viewed_by=e.viewed_by,
    )


# Rules -------------------------------------------------------------------------------


@_tells(ConsentDecided)
def _consent_decided(e: ConsentDecided, at: datetime) -> Told:
    stage, decided = plain(e.stage, "stage"), e.decision_id
    if e.status == "active":
        what = "Consent is complete for stage {}: the support person may take part"
        return e.case_id, _entry(at, e, what, stage, who=RULES, decision_id=decided)
    what = "Consent pending for stage {}, awaited from {}"
    if e.status == "suspended":
        what = "Consent suspended for stage {}, missing from {}"
    missing = tuple(e.missing_party_ids)
    return e.case_id, _entry(at, e, what, stage, missing, who=RULES, decision_id=decided)


@_tells(MatchingPolicyDecided)
def _policy_decided(e: MatchingPolicyDecided, at: datetime) -> Told:
    what = "The client's matching policy was decided"
    return e.case_id, _entry(at, e, what, who=RULES, decision_id=e.decision_id)


# Matching ----------------------------------------------------------------------------


@_tells(MatchProposed)
def _proposed(e: MatchProposed, at: datetime) -> Told:
    ids = tuple(p.supporter_id for p in e.proposals)
    if len(ids) == 1:
        what = "Proposed 1 supporter (round {}): {}"
        return e.case_id, _entry(at, e, what, e.round, ids, who=MATCHING)
    what = "Proposed {} supporters (round {}): {}"
    return e.case_id, _entry(at, e, what, len(ids), e.round, ids, who=MATCHING)


@_tells(ClientWaitlisted)
def _waitlisted(e: ClientWaitlisted, at: datetime) -> Told:
    what = "The client was put on the waitlist: no supporter can serve them now"
    return e.case_id, _entry(at, e, what, who=MATCHING, why=_reason(e.constraint))


@_tells(ProposalsWithdrawn)
def _withdrawn(e: ProposalsWithdrawn, at: datetime) -> Told:
    what = "Proposals withdrawn: {}"
    ids = tuple(e.supporter_ids)
    return e.case_id, _entry(at, e, what, ids, who=MATCHING, why=_reason(e.reason))


@_tells(ProposalAccepted)
def _accepted(e: ProposalAccepted, at: datetime) -> Told:
    return e.case_id, _entry(at, e, "The client chose {}", e.supporter_id, who=CLIENT)


@_tells(ProposalsDeclined)
def _declined(e: ProposalsDeclined, at: datetime) -> Told:
    what = "The client declined every supporter proposed: {}"
    return e.case_id, _entry(at, e, what, tuple(e.supporter_ids), who=CLIENT)


@_tells(ProposalsExpired)
def _expired(e: ProposalsExpired, at: datetime) -> Told:
    what = "The proposals ended before the client chose: {}"
    why = "the time to choose ran out"
    return e.case_id, _entry(at, e, what, tuple(e.supporter_ids), who=MATCHING, why=why)


@_tells(MatchActivated)
def _activated(e: MatchActivated, at: datetime) -> Told:
    what, why = "The match with {} is active", "every party has consented"
    return e.case_id, _entry(at, e, what, e.supporter_id, who=MATCHING, why=why)


@_tells(MatchPaused)
def _paused(e: MatchPaused, at: datetime) -> Told:
    what = "The match with {} was paused for a coordinator's review"
    return e.case_id, _entry(at, e, what, e.supporter_id, who=MATCHING, why=_reason(e.reason))


@_tells(SupporterAgreed)
def _agreed(e: SupporterAgreed, at: datetime) -> Told:
    return e.case_id, _entry(
        at, e, "{} agreed to support the client", e.supporter_id, who=SUPPORTER
    )


@_tells(MatchResumed)
def _resumed(e: MatchResumed, at: datetime) -> Told:
    what = "The match with {} was resumed after review"
    return e.case_id, _entry(at, e, what, e.supporter_id, who=COORDINATOR)


@_tells(MatchEnded)
def _ended(e: MatchEnded, at: datetime) -> Told:
    by_client = e.reason in ("change_of_supporter", "service_refused")
    who = CLIENT if by_client else SERVICE
    what = "The match with {} ended"
    return e.case_id, _entry(at, e, what, e.supporter_id, who=who, why=_reason(e.reason))


@_tells(ServiceRefused)
def _refused(e: ServiceRefused, at: datetime) -> Told:
    return e.case_id, _entry(at, e, "The client refused peer support", who=CLIENT)


# Scheduling --------------------------------------------------------------------------

_PROPOSED_BY = {"scheduling": SCHEDULING, "client": CLIENT, "supporter": SUPPORTER}
_CANCELLED_BY = {"cancelled_by_client": CLIENT, "cancelled_by_supporter": SUPPORTER}
_ATTENDED = {
    "completed": "Session {} was held",
    "client_no_show": "The client did not come to session {}",
    "supporter_no_show": "The supporter did not come to session {}",
}


@_tells(InitialMeetingProposed)
def _meeting_proposed(e: InitialMeetingProposed, at: datetime) -> Told:
    what = "First meeting proposed for {} ({}) with {}"
    how = plain(e.method, "method")
    who = _PROPOSED_BY[e.proposed_by]
    return e.case_id, _entry(at, e, what, e.start, how, e.supporter_id, who=who)


@_tells(SessionBooked)
def _booked(e: SessionBooked, at: datetime) -> Told:
    how = plain(e.method, "method")
    if e.kind == "initial_meeting":  # booked once both sides confirmed it
        what = "First meeting booked for {} ({}) with {}"
        return e.case_id, _entry(at, e, what, e.start, how, e.supporter_id, who=BOTH)
    who = COORDINATOR if e.kind == "extra" else SCHEDULING
    what = "Extra session booked for {} ({})" if e.kind == "extra" else "Session booked for {} ({})"
    return e.case_id, _entry(at, e, what, e.start, how, who=who)


@_tells(SessionsScheduled)
def _scheduled(e: SessionsScheduled, at: datetime) -> Told:
    what = "{} weekly sessions with {} booked, {}s at {}, to {}"
    facts = (len(e.session_ids), e.supporter_id, e.weekday, e.local_time, e.service_ends_on)
    why = "the client went ahead after the first meeting"
    return e.case_id, _entry(at, e, what, *facts, who=CLIENT, why=why)


@_tells(SessionRescheduled)
def _rescheduled(e: SessionRescheduled, at: datetime) -> Told:
    what = "Session {} moved to {}"
    return e.case_id, _entry(at, e, what, e.session_id, e.start, who=COORDINATOR)


@_tells(SessionCancelled)
def _cancelled(e: SessionCancelled, at: datetime) -> Told:
    who = _CANCELLED_BY.get(e.reason, SCHEDULING)
    what, why = "Session {} cancelled", _reason(e.reason)
    return e.case_id, _entry(at, e, what, e.session_id, who=who, why=why)


@_tells(SessionAttended)
def _attended(e: SessionAttended, at: datetime) -> Told:
    return e.case_id, _entry(at, e, _ATTENDED[e.outcome], e.session_id, who=COORDINATOR)


@_tells(ServiceExtended)
def _extended(e: ServiceExtended, at: datetime) -> Told:
    what = "The service was extended to {}: {} more sessions"
    facts = (e.service_ends_on, len(e.session_ids))
    return e.case_id, _entry(at, e, what, *facts, who=COORDINATOR)


@_tells(ServiceEnded)
def _service_ended(e: ServiceEnded, at: datetime) -> Told:
    what = "The funded service ended on {}; the match with {} ended"
    return e.case_id, _entry(at, e, what, e.ended_on, e.supporter_id, who=SCHEDULING)


@_tells(SessionsResumed)
def _sessions_resumed(e: SessionsResumed, at: datetime) -> Told:
    what, why = "{} sessions booked again", "what suspended them has passed"
    return e.case_id, _entry(at, e, what, len(e.session_ids), who=SCHEDULING, why=why)


@_tells(FrequencyAgreed)
def _frequency_agreed(e: FrequencyAgreed, at: datetime) -> Told:
    what = "Agreed to meet {} times a week"
    return e.case_id, _entry(at, e, what, e.sessions_per_week, who=BOTH)


@_tells(SessionReminderDue)
def _reminder(e: SessionReminderDue, at: datetime) -> Told:
    what = "A reminder of session {} at {} was due"
    return e.case_id, _entry(at, e, what, e.session_id, e.start, who=SCHEDULING)


@_tells(GroupParticipantJoined)
def _joined_group(e: GroupParticipantJoined, at: datetime) -> Told:
    what = "The client joined group session {} ({} places left)"
    return e.case_id, _entry(at, e, what, e.group_id, e.places_left, who=COORDINATOR)


# The events a timeline tells; the others are about no one case.
# Messages to people: on the case's timeline when they are about a case's client or party.
_OUTCOMES: dict[type[Event], str] = {
    NotificationSent: "Message to {} ({}) sent",
    NotificationDeferred: "Message to {} ({}) waits",
    NotificationBounced: "Message to {} ({}) bounced: the address does not exist",
    NotificationFailed: "Message to {} ({}) could not be sent, after every try",
    NotificationWithheld: "Message to {} ({}) not sent",
}


def _message(e: Any, at: datetime) -> Told:
    person = e.person
    if person.kind == "supporter" or person.case_id is None:
        return None
    whom = CLIENT if person.kind == "client" else _party(person.party_id)[0]
    because = getattr(e, "because", None)
    what = _OUTCOMES[type(e)] + (" until {}" if isinstance(e, NotificationDeferred) else "")
    facts: tuple[Fact, ...] = (whom, e.about.replace("_", " "))
    if isinstance(e, NotificationDeferred):
        facts = (*facts, e.until)
    why = _reason(because) if because else None
    return person.case_id, _entry(at, e, what, *facts, who=SERVICE, why=why)


for _kind in _OUTCOMES:
    _tells(_kind)(_message)

TOLD: tuple[type[Event], ...] = tuple(_TELLERS)
