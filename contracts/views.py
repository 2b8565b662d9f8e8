"""What a coordinator reads: views of a case or a supporter, answered by intake from every
service's records (read only), and, for a supervisor, why a decision was made; each view
recorded.

A view is a command that changes nothing: ``ViewCase`` is answered with ``CaseView``, as
``ExportPersonData`` is with ``PersonData``; that it was seen, by whom (the asking
command's source: the console names the signed-in account), is published first as
``CaseViewed`` (``SupporterViewed``), ids only, the access log supervisors read.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import Field

from contracts.envelope import Command, EntityId, Event, Message, Part
from contracts.intake import SERVICE, SupporterProfile
from contracts.records import CaseMatch, CaseRecord, CaseSchedule, SupporterSupervision
from contracts.rules import Kind, LoggedDecision


class ViewCase(Command):
    """Everything a coordinator works with on one case: answered with ``CaseView``."""

    type_name: ClassVar[str] = "ViewCase"
    service: ClassVar[str] = SERVICE
    case_id: EntityId


class CaseView(Message):
    """A case as its services hold it now: intake's record (the client, the dispute, the
    parties and their consent per stage), matching's (proposals with their explanations and
    hold ends, or why the client waits) and scheduling's (meetings and sessions)."""

    type_name: ClassVar[str] = "CaseView"
    schema_version: ClassVar[str] = "1.1"  # 1.1: withheld
    status: Literal["case_viewed"] = "case_viewed"  # tells the replies apart
    command_id: str
    viewed_at: datetime
    case: CaseRecord
    matching: CaseMatch | None = None
    schedule: CaseSchedule | None = None
    # Fields held that the reader's role may not read (docs/decisions/0002), by their path
    # (``case.intake.client.safety_concerns``): each is answered empty.
    withheld: list[str] = Field(default_factory=list)


class CaseViewed(Event):
    """Someone saw a case: the access log, ids only."""

    type_name: ClassVar[str] = "CaseViewed"
    case_id: EntityId
    command_id: str
    viewed_by: str  # the viewing command's source: the console names the account


class ViewSupporter(Command):
    """A supporter as a coordinator works with them: answered with ``SupporterView``."""

    type_name: ClassVar[str] = "ViewSupporter"
    service: ClassVar[str] = SERVICE
    supporter_id: EntityId


class EvidenceOnFile(Part):
    """Which kind of vetting evidence is on file, for which day and until when; never what
    it says (a record check's result and reference stay in intake's record)."""

    kind: str
    recorded_for: date
    valid_until: date | None = None


class SupporterView(Message):
    """A supporter as their services hold them now: the profile, the vetting on file,
    eligibility and the day it lapses, who holds their slots, supervision."""

    type_name: ClassVar[str] = "SupporterView"
    schema_version: ClassVar[str] = "1.1"  # 1.1: withheld
    status: Literal["supporter_viewed"] = "supporter_viewed"
    command_id: str
    viewed_at: datetime
    supporter_id: str
    profile: SupporterProfile
    suspended: bool
    registered_at: datetime
    vetting: list[EvidenceOnFile]
    eligible: bool | None = None  # None: not decided yet
    lapses_on: date | None = None
    # Each case holding one of their slots: until when (while proposed), or None (chosen).
    caseload: dict[str, datetime | None] = Field(default_factory=dict)
    supervision: SupporterSupervision | None = None
    # Fields held that the reader's role may not read (``profile.lived_experience``),
    # each answered empty (docs/decisions/0002).
    withheld: list[str] = Field(default_factory=list)


class SupporterViewed(Event):
    """Someone saw a supporter: the access log, ids only."""

    type_name: ClassVar[str] = "SupporterViewed"
    supporter_id: EntityId
    command_id: str
    viewed_by: str


class ViewDecision(Command):
    """Why a rules decision came out as it did, from the decision log (a supervisor's or an
    operator's): answered with ``DecisionView``."""

    type_name: ClassVar[str] = "ViewDecision"
    service: ClassVar[str] = SERVICE
    decision_id: EntityId  # as its decision event carries it


class DecisionView(Message):
    """The logged decision: which ruleset, which rules fired and why (reasons are about the
    person: sensitive), and a hash of the facts decided on."""

    type_name: ClassVar[str] = "DecisionView"
    status: Literal["decision_viewed"] = "decision_viewed"
    command_id: str
    viewed_at: datetime
    logged: LoggedDecision


class DecisionViewed(Event):
    """Someone read why a decision about a person was made: the access log, ids only."""

    type_name: ClassVar[str] = "DecisionViewed"
    decision_id: EntityId
    kind: Kind
    subject_id: EntityId
    command_id: str
    viewed_by: str


COMMANDS: tuple[type[Command], ...] = (ViewCase, ViewSupporter, ViewDecision)
EVENTS: tuple[type[Event], ...] = (CaseViewed, SupporterViewed, DecisionViewed)
