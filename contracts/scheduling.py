"""Scheduling: the initial meeting, regular sessions within the boundaries, supervision, groups.

Times are aware datetimes; the service works in the organisation's time zone
(``ConfigureScheduling``), so a weekly session keeps its local time across a
daylight-saving change. Events carry ids, times, methods and statuses, never
names, places or what a session is about.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Annotated, ClassVar, Literal
from zoneinfo import available_timezones

from pydantic import Field, field_validator

from contracts.envelope import Command, Day, EntityId, Event, Moment, Part
from contracts.intake import LongText, Method, Tag
from contracts.privacy import SENSITIVE

SERVICE = "scheduling"

Party = Literal["client", "supporter"]


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


class SchedulingPolicy(Part):
    """An organisation's scheduling settings (defaults when it never configured them)."""

    time_zone: str = "Pacific/Auckland"
    funded_weeks: int = Field(default=12, ge=1, le=104)
    session_minutes: int = Field(default=60, ge=15, le=240)
    # The initial meeting is offered no sooner than this after the match is active.
    lead_hours: int = Field(default=48, ge=0, le=24 * 14)
    reminder_hours: int = Field(default=24, ge=1, le=24 * 7)
    supervision_every_days: int = Field(default=28, ge=7, le=90)
    debrief_every_days: int = Field(default=14, ge=7, le=90)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # An Area/Location zone (or UTC): "localtime" would be each host's own zone, and
        # "Factory" or "EST5EDT" are not places an organisation is in.
        if value != "UTC" and ("/" not in value or value not in _zones()):
            raise ValueError(f"{value!r} is not an IANA time zone such as Pacific/Auckland")
        return value


# Commands ----------------------------------------------------------------


class ConfigureScheduling(Command):
    """Set the organisation's time zone, funded length of service and cadences."""

    type_name: ClassVar[str] = "ConfigureScheduling"
    service: ClassVar[str] = SERVICE
    policy: SchedulingPolicy


class ConfirmMeeting(Command):
    """One side confirms the proposed initial meeting; it is booked once both have."""

    type_name: ClassVar[str] = "ConfirmMeeting"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    by: Party


class ProposeMeetingTime(Command):
    """One side proposes another time for the initial meeting; the other must confirm it."""

    type_name: ClassVar[str] = "ProposeMeetingTime"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    by: Party
    start: Moment


class GoAhead(Command):
    """After the initial meeting the client goes ahead: weekly sessions for the funded period.

    (A client who does not go ahead refuses the service: matching's ``RefuseService``.)
    """

    type_name: ClassVar[str] = "GoAhead"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    method: Method | None = None  # default: the initial meeting's
    # The first weekly session, whose weekday and local time the rest keep (default: a week
    # after the initial meeting, at its time).
    first_session: Moment | None = None


class RecordFrequencyAgreement(Command):
    """Client and supporter both agreed to meet more often than weekly; kept on record."""

    type_name: ClassVar[str] = "RecordFrequencyAgreement"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    sessions_per_week: int = Field(ge=2, le=7)


class BookSession(Command):
    """An extra one-to-one session, judged by the boundaries rules like every booking."""

    type_name: ClassVar[str] = "BookSession"
    schema_version: ClassVar[str] = "1.1"  # 1.1: notes
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    start: Moment
    minutes: int = Field(ge=5, le=480)
    method: Method
    # What the session is for: the boundaries rules allow only what peer support is for.
    purposes: list[Tag] = Field(default_factory=lambda: ["peer_support"], max_length=10)
    # For the supporter and coordinator; kept with the session, never on an event, and never
    # judged by the rules: notes cannot widen what the purposes are allowed to be.
    notes: Annotated[LongText | None, SENSITIVE] = None


class RescheduleSession(Command):
    type_name: ClassVar[str] = "RescheduleSession"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    session_id: EntityId
    start: Moment


class CancelSession(Command):
    type_name: ClassVar[str] = "CancelSession"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    session_id: EntityId
    by: Party


class RecordAttendance(Command):
    """What happened at a session (or the initial meeting): held, or someone did not come."""

    type_name: ClassVar[str] = "RecordAttendance"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    session_id: EntityId
    outcome: Literal["completed", "client_no_show", "supporter_no_show"]


class ExtendService(Command):
    """The organisation funds more: weekly sessions continue to the new end date."""

    type_name: ClassVar[str] = "ExtendService"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    until: Day


class RecordSupervisionAttendance(Command):
    """A supporter attended supervision or a team debrief; eligibility counts it."""

    type_name: ClassVar[str] = "RecordSupervisionAttendance"
    service: ClassVar[str] = SERVICE
    supporter_id: EntityId
    session_id: EntityId


class CreateGroupSession(Command):
    type_name: ClassVar[str] = "CreateGroupSession"
    service: ClassVar[str] = SERVICE
    group_id: EntityId
    facilitator_id: EntityId  # a supporter
    start: Moment
    minutes: int = Field(ge=5, le=480)
    method: Method
    capacity: int = Field(ge=2, le=30)


class JoinGroupSession(Command):
    """A client joins a group session: their case's consent must be active, the boundaries
    met, and a place free."""

    type_name: ClassVar[str] = "JoinGroupSession"
    service: ClassVar[str] = SERVICE
    group_id: EntityId
    case_id: EntityId


# Events ------------------------------------------------------------------


class InitialMeetingProposed(Event):
    """A time both are free, by a method both accept; each side confirms or proposes another."""

    type_name: ClassVar[str] = "InitialMeetingProposed"
    case_id: EntityId
    supporter_id: EntityId
    session_id: EntityId
    start: datetime
    end: datetime
    method: Method
    proposed_by: Literal["scheduling", "client", "supporter"]


class SessionBooked(Event):
    type_name: ClassVar[str] = "SessionBooked"
    case_id: EntityId
    supporter_id: EntityId
    session_id: EntityId
    kind: Literal["initial_meeting", "regular", "extra"]
    start: datetime
    end: datetime
    method: Method


class SessionsScheduled(Event):
    """Regular sessions set up after the client went ahead; the end date is known now."""

    type_name: ClassVar[str] = "SessionsScheduled"
    schema_version: ClassVar[str] = "1.1"  # 1.1: starts
    case_id: EntityId
    supporter_id: EntityId
    session_ids: list[EntityId]
    starts: list[datetime] = Field(default_factory=list)  # each session's, in session_ids' order
    weekday: str
    local_time: str
    time_zone: str
    service_ends_on: date


class SessionRescheduled(Event):
    type_name: ClassVar[str] = "SessionRescheduled"
    case_id: EntityId
    session_id: EntityId
    start: datetime
    end: datetime


class SessionCancelled(Event):
    type_name: ClassVar[str] = "SessionCancelled"
    schema_version: ClassVar[str] = "1.1"  # 1.1: the reason client_erased
    case_id: EntityId
    session_id: EntityId
    reason: Literal[
        "cancelled_by_client",
        "cancelled_by_supporter",
        "consent_not_active",
        "supporter_changed",
        "supporter_ineligible",
        "service_refused",
        "client_erased",
    ]


class SessionsResumed(Event):
    """What suspended the schedule has passed (consent active again, the supporter fit again):
    its future sessions are booked again."""

    type_name: ClassVar[str] = "SessionsResumed"
    case_id: EntityId
    session_ids: list[EntityId]


class ServiceEnded(Event):
    """The funded period is over: the match ends and the supporter's slot is free again."""

    type_name: ClassVar[str] = "ServiceEnded"
    case_id: EntityId
    supporter_id: EntityId
    ended_on: date


class SessionAttended(Event):
    type_name: ClassVar[str] = "SessionAttended"
    case_id: EntityId
    session_id: EntityId
    outcome: Literal["completed", "client_no_show", "supporter_no_show"]


class ServiceExtended(Event):
    type_name: ClassVar[str] = "ServiceExtended"
    schema_version: ClassVar[str] = "1.1"  # 1.1: starts
    case_id: EntityId
    service_ends_on: date
    session_ids: list[EntityId]
    starts: list[datetime] = Field(default_factory=list)  # each session's, in session_ids' order


class FrequencyAgreed(Event):
    type_name: ClassVar[str] = "FrequencyAgreed"
    case_id: EntityId
    sessions_per_week: int


class SessionReminderDue(Event):
    """Published by the server at the scheduled time (a NATS message schedule)."""

    type_name: ClassVar[str] = "SessionReminderDue"
    case_id: EntityId
    session_id: EntityId
    start: datetime


class SupervisionScheduled(Event):
    type_name: ClassVar[str] = "SupervisionScheduled"
    supporter_id: EntityId
    session_id: EntityId
    kind: Literal["supervision", "team_debrief"]
    start: datetime


class SupervisionAttended(Event):
    type_name: ClassVar[str] = "SupervisionAttended"
    supporter_id: EntityId
    session_id: EntityId
    kind: Literal["supervision", "team_debrief"]
    attended_on: date


class GroupSessionCreated(Event):
    type_name: ClassVar[str] = "GroupSessionCreated"
    group_id: EntityId
    facilitator_id: EntityId
    start: datetime
    end: datetime
    method: Method
    capacity: int


class GroupParticipantJoined(Event):
    type_name: ClassVar[str] = "GroupParticipantJoined"
    group_id: EntityId
    case_id: EntityId
    places_left: int


class SchedulingConfigured(Event):
    type_name: ClassVar[str] = "SchedulingConfigured"
    policy: SchedulingPolicy


COMMANDS: tuple[type[Command], ...] = (
    ConfigureScheduling,
    ConfirmMeeting,
    ProposeMeetingTime,
    GoAhead,
    RecordFrequencyAgreement,
    BookSession,
    RescheduleSession,
    CancelSession,
    RecordAttendance,
    ExtendService,
    RecordSupervisionAttendance,
    CreateGroupSession,
    JoinGroupSession,
)
EVENTS: tuple[type[Event], ...] = (
    InitialMeetingProposed,
    SessionBooked,
    SessionsScheduled,
    SessionRescheduled,
    SessionCancelled,
    SessionAttended,
    ServiceExtended,
    ServiceEnded,
    SessionsResumed,
    FrequencyAgreed,
    SessionReminderDue,
    SupervisionScheduled,
    SupervisionAttended,
    GroupSessionCreated,
    GroupParticipantJoined,
    SchedulingConfigured,
)
