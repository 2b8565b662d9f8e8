"""Which events concern which people, and what each of them is told: pure.

A plan is a message to one person about one thing: the template it is written from, the
facts the template may use (times and kinds, never a name, the dispute or anything
sensitive), whether it is essential, the personal link it carries and, for a meeting, its
calendar invitation. Its id derives from what makes it one message (the event, or what the
event is about), so an event redelivered, or decided again, plans the same message, which
is kept once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from contracts.intake import CLIENT_PARTY_ID
from contracts.matching import MatchProposed, ProposalAccepted, ProposalsWithdrawn
from contracts.notifications import Person, Purpose
from contracts.records import CaseSchedule, Invitation, Session
from contracts.scheduling import (
    InitialMeetingProposed,
    SessionBooked,
    SessionCancelled,
    SessionReminderDue,
    SessionRescheduled,
    SupervisionScheduled,
)

_NAMESPACE = uuid.UUID("0b7e4d43-5f0e-4c1e-9c55-2b1a9d2f6e10")
# A supervision's invitation lasts an hour, as scheduling's calendar files say.
SUPERVISION_MINUTES = 60


@dataclass(frozen=True)
class Plan:
    person: Person
    about: str  # the template: proposals_ready, session_moved ...
    cause_id: str
    essential: bool = True
    purpose: Purpose | None = None
    facts: dict[str, str] = field(default_factory=dict)
    invitation: Invitation | None = None
    # What makes it one message, where that is not the event (a consent request is one per
    # party, support person and stage, however often consent is decided).
    once_per: str | None = None
    # The case its link is bound to (a client's or party's own; a supporter's: the client's).
    case_id: str | None = None

    @property
    def message_id(self) -> str:
        once = self.once_per or self.cause_id
        return uuid.uuid5(_NAMESPACE, f"{once}:{self.person.key}:{self.about}").hex


def client(case_id: str) -> Person:
    return Person(kind="client", case_id=case_id)


def party(case_id: str, party_id: str) -> Person:
    if party_id == CLIENT_PARTY_ID:
        return client(case_id)
    return Person(kind="party", case_id=case_id, party_id=party_id)


def supporter(supporter_id: str) -> Person:
    return Person(kind="supporter", supporter_id=supporter_id)


def proposals(event: MatchProposed, cause_id: str, waitlisted: bool) -> list[Plan]:
    """The client's proposals are ready (after a wait on the list: a place was found)."""
    until = min(p.held_until for p in event.proposals)
    return [
        Plan(
            client(event.case_id),
            "place_found" if waitlisted else "proposals_ready",
            cause_id,
            purpose="choose_supporter",
            facts={"count": str(len(event.proposals)), "until": until.isoformat()},
        )
    ]


def withdrawn(event: ProposalsWithdrawn, cause_id: str) -> list[Plan]:
    return [Plan(client(event.case_id), "proposal_withdrawn", cause_id, purpose="choose_supporter")]


def offered(event: ProposalAccepted, cause_id: str) -> list[Plan]:
    """A client chose the supporter: the supporter hears, and may accept or decline."""
    return [
        Plan(
            supporter(event.supporter_id),
            "client_offered",
            cause_id,
            purpose="supporter_offer",
            case_id=event.case_id,
        )
    ]


def consent_requested(
    case_id: str, stage: str, missing: list[str], support_person_ref: str, cause_id: str
) -> list[Plan]:
    """Each party whose consent is missing is asked once per support person and stage."""
    return [
        Plan(
            party(case_id, party_id),
            "consent_requested",
            cause_id,
            purpose="consent",
            facts={"stage": stage},
            once_per=f"consent:{case_id}:{party_id}:{support_person_ref}:{stage}",
        )
        for party_id in missing
    ]


def consent_recorded(case_id: str, party_id: str, given: bool, cause_id: str) -> list[Plan]:
    about = "consent_given" if given else "consent_withdrawn"
    return [Plan(party(case_id, party_id), about, cause_id, purpose="consent")]


SessionEvent = (
    InitialMeetingProposed
    | SessionBooked
    | SessionRescheduled
    | SessionCancelled
    | SessionReminderDue
)
ABOUT = {
    InitialMeetingProposed: "meeting_proposed",
    SessionBooked: "session_booked",
    SessionRescheduled: "session_moved",
    SessionCancelled: "session_cancelled",
    SessionReminderDue: "reminder",
}


def session_news(
    event: SessionEvent, schedule: CaseSchedule, cause_id: str, announced_at: datetime
) -> list[Plan]:
    """The client and the supporter hear of a meeting or session: proposed, booked, moved,
    cancelled (each with its invitation: one UID, a higher SEQUENCE each time), or due soon
    (a reminder, which is not essential)."""
    session = next((s for s in schedule.sessions if s.session_id == event.session_id), None)
    if session is None:
        return []
    about = ABOUT[type(event)]
    start, end = _times(event, session)
    facts = {"start": start.isoformat(), "kind": session.kind, "method": session.method.value}
    invitation = None
    if not isinstance(event, SessionReminderDue):
        invitation = Invitation(
            uid=f"{event.case_id}-{event.session_id}@alongside",
            method="CANCEL" if isinstance(event, SessionCancelled) else "REQUEST",
            sequence=int(announced_at.timestamp()),
            start=start,
            end=end,
            kind=session.kind,
            by=session.method,
        )
    people = [client(event.case_id), supporter(schedule.supporter_id)]
    if isinstance(event, SessionCancelled) and event.reason == "client_erased":
        people = people[1:]
    return [
        Plan(
            person,
            about,
            cause_id,
            essential=about != "reminder",
            purpose="schedule",
            facts=facts,
            invitation=invitation,
            case_id=event.case_id,
        )
        for person in people
    ]


def _times(event: SessionEvent, session: Session) -> tuple[datetime, datetime]:
    if isinstance(event, InitialMeetingProposed | SessionBooked | SessionRescheduled):
        return event.start, event.end
    return session.start, session.end


def supervision(event: SupervisionScheduled, cause_id: str, announced_at: datetime) -> list[Plan]:
    end = event.start + timedelta(minutes=SUPERVISION_MINUTES)
    invitation = Invitation(
        uid=f"{event.supporter_id}-{event.session_id}@alongside",
        method="REQUEST",
        sequence=int(announced_at.timestamp()),
        start=event.start,
        end=end,
        kind=event.kind,
    )
    return [
        Plan(
            supporter(event.supporter_id),
            "supervision_due",
            cause_id,
            purpose="schedule",
            facts={"start": event.start.isoformat(), "kind": event.kind},
            invitation=invitation,
        )
    ]


def check_lapsing(supporter_id: str, lapses_on: date, today: date, within_days: int) -> list[Plan]:
    """A supporter's vetting lapses soon: told once per lapse date."""
    if not today <= lapses_on <= today + timedelta(days=within_days):
        return []
    return [
        Plan(
            supporter(supporter_id),
            "check_lapsing",
            f"lapse:{supporter_id}:{lapses_on.isoformat()}",
            facts={"lapses_on": lapses_on.isoformat()},
        )
    ]
