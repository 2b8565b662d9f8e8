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
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from contracts.envelope import Command, EntityId, Event, Message, Part
from contracts.intake import SERVICE, SupporterProfile
from contracts.privacy import PERSONAL, SENSITIVE
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


class WhyIneligible(Part):
    """One rule that keeps a supporter from new matches, as their latest eligibility decision
    fired it: its id, its plain words, and why (about the person: sensitive, so answered
    empty to a role that may not read it)."""

    rule: str
    label: str
    reason: Annotated[str | None, SENSITIVE] = None


class SupporterView(Message):
    """A supporter as their services hold them now: the profile, the vetting on file,
    eligibility and the day it lapses, who holds their slots, supervision."""

    type_name: ClassVar[str] = "SupporterView"
    schema_version: ClassVar[str] = "1.2"  # 1.1: withheld; 1.2: ineligible_because
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
    # Why not eligible: each rule of the latest decision that made it so, in the ruleset's
    # order (empty while eligible). "Caseload full" alone: current matches go on.
    ineligible_because: list[WhyIneligible] = Field(default_factory=list)
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


# The console's search: names and contact details, kept in the console's memory only -------

DIRECTORY_BATCH = 500  # ids in one ReadDirectory, of each person


class ReadDirectory(Command):
    """The names and contact details of the given clients and supporters, for the console's
    search (docs/decisions/0030): answered with ``Directory``. The console's own read,
    sent when it first searches an organisation and again for each record new or changed
    since; never served to a person or an integration."""

    type_name: ClassVar[str] = "ReadDirectory"
    service: ClassVar[str] = SERVICE
    case_ids: list[EntityId] = Field(default_factory=list, max_length=DIRECTORY_BATCH)
    supporter_ids: list[EntityId] = Field(default_factory=list, max_length=DIRECTORY_BATCH)


class DirectoryEntry(Part):
    """What a person is found by: their reference, name and contact details."""

    person: Literal["client", "supporter"]
    subject_id: str
    display_name: Annotated[str, PERSONAL]
    email: Annotated[str | None, PERSONAL] = None
    phone: Annotated[str | None, PERSONAL] = None


class Directory(Message):
    """The entries asked for; those not held (never, or erased) are left out."""

    type_name: ClassVar[str] = "Directory"
    status: Literal["directory_read"] = "directory_read"
    command_id: str
    read_at: datetime
    entries: list[DirectoryEntry]


class DirectoryRead(Event):
    """The console read names and contact details for its search: how many, by whom (the
    access log; ids are not listed, the counts say how much was read)."""

    type_name: ClassVar[str] = "DirectoryRead"
    command_id: str
    read_by: str
    clients: int
    supporters: int


COMMANDS: tuple[type[Command], ...] = (ViewCase, ViewSupporter, ViewDecision, ReadDirectory)
EVENTS: tuple[type[Event], ...] = (CaseViewed, SupporterViewed, DecisionViewed, DirectoryRead)
# Reads only the console sends for itself: no HTTP route, no form (``catalogue``).
CONSOLE_ONLY: tuple[type[Command], ...] = (ReadDirectory,)
