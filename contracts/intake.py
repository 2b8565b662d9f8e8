"""Contracts of the intake service: supporters, vetting, client intake, consent.

Commands carry the personal data the service must store. Events carry only what
a subscriber needs to react (ids, stages, kinds, dates); the full record stays
in the organisation's KV state, readable only by that organisation's services.
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from contracts.console import EMAIL_PATTERN
from contracts.envelope import Command, Day, EntityId, Event, Message, Part
from contracts.privacy import PERSONAL, SENSITIVE

SERVICE = "intake"

Tag = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,40}$", description="lower_snake_case tag")]
LanguageCode = Annotated[
    str, Field(pattern=r"^[a-z]{2,3}$", description="ISO 639 code, e.g. en, sm, mi")
]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=2000)]


class Method(StrEnum):
    """How a session happens, including where when it is in person."""

    IN_PERSON = "in_person"  # a safe public or organisation venue
    HOME_VISIT = "home_visit"  # at the client's home
    PHONE = "phone"
    TEXT = "text"
    VIDEO = "video"


class Stage(StrEnum):
    """Stages of a dispute, from entry through to adjudication."""

    ENTRY = "entry"
    EARLY_RESOLUTION = "early_resolution"
    INVESTIGATION = "investigation"
    CONCILIATION = "conciliation"
    ADJUDICATION = "adjudication"
    CLOSED = "closed"


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


class Strength(StrEnum):
    MUST = "must"
    PREFER = "prefer"


def _local(value: time) -> time:
    # A slot is a wall-clock time in the organisation's zone; an offset would contradict it
    # (and comparing one with an offset-free time raised, leaving the command unanswered).
    if value.tzinfo is not None:
        raise ValueError("must be a local time without a UTC offset, such as 17:00:00")
    return value


LocalTime = Annotated[
    time,
    AfterValidator(_local),
    # Said as it is: not RFC 3339's `time` format, which requires an offset.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$",
            "description": "A local wall-clock time in the organisation's time zone, without "
            "a UTC offset, e.g. 17:00:00",
        }
    ),
]


class Slot(Part):
    """A weekly window of availability, in the organisation's time zone."""

    day: Weekday
    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _ends_after_start(self) -> Slot:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Affiliation(Part):
    """An organisation or person a supporter is connected to (conflict-of-interest checks)."""

    name: Annotated[ShortText, PERSONAL]
    relationship: Annotated[ShortText, PERSONAL]


class Contact(Part):
    email: Annotated[str, PERSONAL, Field(pattern=EMAIL_PATTERN, max_length=200)] | None = None
    phone: Annotated[str, PERSONAL, Field(pattern=r"^\+?[0-9 ()-]{6,20}$")] | None = None
    # They agreed to be contacted here (messages, their personal links). Without it nothing
    # is sent to them, and the coordinator sees why.
    may_contact: bool = False

    @model_validator(mode="after")
    def _at_least_one(self) -> Contact:
        if self.email is None and self.phone is None:
            raise ValueError("give an email or a phone number")
        return self


class SupporterProfile(Part):
    display_name: Annotated[ShortText, PERSONAL]
    contact: Annotated[Contact, PERSONAL]
    lived_experience: Annotated[list[Tag], SENSITIVE] = Field(min_length=1, max_length=20)
    skills: list[Tag] = Field(default_factory=list, max_length=20)
    languages: list[LanguageCode] = Field(min_length=1, max_length=10)
    birth_year: Annotated[int, PERSONAL] = Field(ge=1900, le=2010)
    gender_identity: Annotated[ShortText | None, PERSONAL] = None
    cultural_background: Annotated[list[Tag], SENSITIVE] = Field(
        default_factory=list, max_length=10
    )
    methods: list[Method] = Field(min_length=1)
    availability: list[Slot] = Field(min_length=1, max_length=28)
    region: Tag
    caseload_cap: int = Field(ge=1, le=30)
    affiliations: Annotated[list[Affiliation], PERSONAL] = Field(
        default_factory=list, max_length=50
    )
    # Cleared by the organisation to support clients under 18.
    youth_cleared: bool = False


class RegisterSupporter(Command):
    """Register a new peer supporter of the organisation."""

    type_name: ClassVar[str] = "RegisterSupporter"
    schema_version: ClassVar[str] = "1.2"  # 1.1: profile.youth_cleared; 1.2: contact.may_contact
    service: ClassVar[str] = SERVICE
    supporter_id: EntityId
    profile: SupporterProfile


class SupporterChanges(Part):
    """The profile fields to replace; fields left out, or null, stay as they are."""

    display_name: Annotated[ShortText | None, PERSONAL] = None
    contact: Annotated[Contact | None, PERSONAL] = None
    lived_experience: Annotated[list[Tag] | None, SENSITIVE] = Field(
        default=None, min_length=1, max_length=20
    )
    skills: list[Tag] | None = Field(default=None, max_length=20)
    languages: list[LanguageCode] | None = Field(default=None, min_length=1, max_length=10)
    gender_identity: Annotated[ShortText | None, PERSONAL] = None
    cultural_background: Annotated[list[Tag] | None, SENSITIVE] = Field(default=None, max_length=10)
    methods: list[Method] | None = Field(default=None, min_length=1)
    availability: list[Slot] | None = Field(default=None, min_length=1, max_length=28)
    region: Tag | None = None
    caseload_cap: int | None = Field(default=None, ge=1, le=30)
    youth_cleared: bool | None = None
    affiliations: Annotated[list[Affiliation] | None, PERSONAL] = Field(default=None, max_length=50)
    suspended: bool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> SupporterChanges:
        if not self.named():
            raise ValueError("name at least one field to change")
        return self

    def named(self) -> dict[str, Any]:
        """The fields to change: those given, and not null."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


class UpdateSupporter(Command):
    """Change a supporter's profile, affiliations or suspension."""

    type_name: ClassVar[str] = "UpdateSupporter"
    schema_version: ClassVar[str] = "1.2"  # 1.1: changes.youth_cleared; 1.2: contact.may_contact
    service: ClassVar[str] = SERVICE
    supporter_id: EntityId
    changes: SupporterChanges


class RecordCheck(Part):
    """Police / vulnerable-sector record check."""

    kind: Literal["record_check"] = "record_check"
    issued_on: Day
    expires_on: Day
    clear: Annotated[bool, SENSITIVE]
    reference: Annotated[ShortText, SENSITIVE]

    @model_validator(mode="after")
    def _expires_after_issue(self) -> RecordCheck:
        if self.expires_on <= self.issued_on:
            raise ValueError("expires_on must be after issued_on")
        return self


class Interview(Part):
    kind: Literal["interview"] = "interview"
    held_on: Day
    passed: Annotated[bool, SENSITIVE]


class Reference(Part):
    kind: Literal["reference"] = "reference"
    reference_type: Literal["professional", "personal"]
    received_on: Day
    satisfactory: Annotated[bool, SENSITIVE]


class Recovery(Part):
    """Start of the supporter's recovery, for the minimum length of recovery."""

    kind: Literal["recovery"] = "recovery"
    since: Annotated[Day, SENSITIVE]


class Training(Part):
    kind: Literal["training"] = "training"
    course: Tag
    completed_on: Day


class Supervision(Part):
    """Attendance at regular supervision or a team debrief."""

    kind: Literal["supervision"] = "supervision"
    session: Literal["supervision", "team_debrief"]
    attended_on: Day


VettingEvidence = Annotated[
    RecordCheck | Interview | Reference | Recovery | Training | Supervision,
    Field(discriminator="kind"),
]


class RecordVettingEvidence(Command):
    """Record one piece of vetting evidence for a supporter."""

    type_name: ClassVar[str] = "RecordVettingEvidence"
    service: ClassVar[str] = SERVICE
    supporter_id: EntityId
    evidence: VettingEvidence


class Preference(Part):
    """A client preference: ``must`` is a hard filter, ``prefer`` a soft weight."""

    values: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        min_length=1, max_length=10
    )
    strength: Strength = Strength.PREFER


class ClientProfile(Part):
    display_name: Annotated[ShortText, PERSONAL]
    contact: Annotated[Contact, PERSONAL]
    birth_year: Annotated[int, PERSONAL] = Field(ge=1900, le=2025)
    languages: list[LanguageCode] = Field(min_length=1, max_length=10)
    access_needs: Annotated[list[Tag], SENSITIVE] = Field(default_factory=list, max_length=20)
    gender_preference: Annotated[Preference | None, PERSONAL] = None
    cultural_preference: Annotated[Preference | None, SENSITIVE] = None
    lived_experience_preference: Annotated[Preference | None, SENSITIVE] = None
    age_preference: Literal["younger", "similar", "older", "any"] = "any"
    other_factors: Annotated[LongText | None, SENSITIVE] = None
    methods: list[Method] = Field(min_length=1)
    availability: list[Slot] = Field(min_length=1, max_length=28)
    region: Tag
    # Safety information is sensitive: it never leaves the case record.
    safety_concerns: Annotated[list[Tag], SENSITIVE] = Field(default_factory=list, max_length=10)


class OtherParty(Part):
    """Another party to the dispute; each must consent to the support person."""

    party_id: EntityId
    kind: Literal["organisation", "person"]
    name: Annotated[ShortText, PERSONAL]
    role: Literal["respondent", "co_complainant", "other"]
    # Where their consent request and personal link go (none: the coordinator asks them).
    contact: Annotated[Contact | None, PERSONAL] = None


class Dispute(Part):
    scheme: Tag
    summary: Annotated[LongText, SENSITIVE]
    stage: Stage = Stage.ENTRY


CLIENT_PARTY_ID = "client"


class SubmitIntake(Command):
    """Open a case from a client's intake interview."""

    type_name: ClassVar[str] = "SubmitIntake"
    # 1.1: import_batch; 1.2: contact.may_contact, other_parties[].contact
    schema_version: ClassVar[str] = "1.2"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    client: ClientProfile
    dispute: Dispute
    other_parties: list[OtherParty] = Field(min_length=1, max_length=20)
    has_other_support: bool
    # Set by ``alongside import``: the case is matched with the rest of its batch, at once.
    import_batch: EntityId | None = None

    @model_validator(mode="after")
    def _party_ids_unique(self) -> SubmitIntake:
        ids = [p.party_id for p in self.other_parties]
        if CLIENT_PARTY_ID in ids:
            raise ValueError(f"party_id {CLIENT_PARTY_ID!r} is reserved for the client")
        if len(ids) != len(set(ids)):
            raise ValueError("party_id values must be unique")
        return self


class ChangeCaseStage(Command):
    """Move a case to another stage of the dispute."""

    type_name: ClassVar[str] = "ChangeCaseStage"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    stage: Stage


class PeerSupporter(Part):
    kind: Literal["peer"] = "peer"
    supporter_id: EntityId


class FamilyOrFriend(Part):
    kind: Literal["family", "friend"]
    display_name: Annotated[ShortText, PERSONAL]
    contact: Annotated[Contact, PERSONAL]


SupportPerson = Annotated[PeerSupporter | FamilyOrFriend, Field(discriminator="kind")]


class NameSupportPerson(Command):
    """Name the client's support person: a peer supporter, or family or a friend."""

    type_name: ClassVar[str] = "NameSupportPerson"
    schema_version: ClassVar[str] = "1.1"  # 1.1: support_person.contact.may_contact
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    support_person: SupportPerson


class GiveConsent(Command):
    """A party consents to the current support person's involvement, for some stages."""

    type_name: ClassVar[str] = "GiveConsent"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    party_id: EntityId
    stages: list[Stage] = Field(min_length=1)
    given_on: Day


class WithdrawConsent(Command):
    """A party withdraws consent; the involvement is suspended at once."""

    type_name: ClassVar[str] = "WithdrawConsent"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    party_id: EntityId
    withdrawn_on: Day


class ExportPersonData(Command):
    """Everything held about one client (by their case) or one supporter, for a subject
    access request: answered with ``PersonData``. Stores nothing of it; that it was asked
    for, by whom and about whom (by id), is recorded as ``PersonDataExported``."""

    type_name: ClassVar[str] = "ExportPersonData"
    service: ClassVar[str] = SERVICE
    person: Literal["client", "supporter"]
    subject_id: EntityId  # the client's case id, or the supporter's id


class EraseClient(Command):
    """Erase a client (right to erasure, or their case's retention period ended): their key
    is destroyed, so every copy of their data, sealed with it, is unreadable for good; their
    case record is removed; matching and scheduling end the case, keeping ids, dates and
    outcomes. Cannot be undone; a later command about the case is refused."""

    type_name: ClassVar[str] = "EraseClient"
    service: ClassVar[str] = SERVICE
    case_id: EntityId


class EraseSupporter(Command):
    """Erase a supporter, as ``EraseClient`` a client. Refused while any client is proposed
    to or supported by them: change those clients' supporter first."""

    type_name: ClassVar[str] = "EraseSupporter"
    service: ClassVar[str] = SERVICE
    supporter_id: EntityId


class PersonData(Message):
    """The reply to ``ExportPersonData``: each record held about the person, by where it is
    kept (``case``, ``matching``, ``schedule``, ``decisions.<kind>`` ...), as stored."""

    type_name: ClassVar[str] = "PersonData"
    status: Literal["exported"] = "exported"
    command_id: str
    person: Literal["client", "supporter"]
    subject_id: str
    exported_at: datetime
    held: Annotated[dict[str, Any], SENSITIVE]


# Events ------------------------------------------------------------------


class SupporterRegistered(Event):
    type_name: ClassVar[str] = "SupporterRegistered"
    supporter_id: EntityId
    region: str
    caseload_cap: int


class SupporterUpdated(Event):
    type_name: ClassVar[str] = "SupporterUpdated"
    schema_version: ClassVar[str] = "1.1"  # 1.1: region and caseload_cap as they are now
    supporter_id: EntityId
    changed_fields: list[str]
    suspended: bool
    region: str | None = None
    caseload_cap: int | None = None


class VettingEvidenceRecorded(Event):
    """Which kind of evidence arrived and until when it holds; never its content."""

    type_name: ClassVar[str] = "VettingEvidenceRecorded"
    supporter_id: EntityId
    kind: str
    recorded_for: Day
    valid_until: Day | None = None


class IntakeReceived(Event):
    type_name: ClassVar[str] = "IntakeReceived"
    case_id: EntityId
    scheme: str
    stage: Stage
    party_ids: list[EntityId]
    has_other_support: bool


class CaseStageChanged(Event):
    type_name: ClassVar[str] = "CaseStageChanged"
    case_id: EntityId
    from_stage: Stage
    to_stage: Stage


class SupportPersonNamed(Event):
    """A family member or friend is named by kind only; a peer by supporter id."""

    type_name: ClassVar[str] = "SupportPersonNamed"
    case_id: EntityId
    kind: Literal["peer", "family", "friend"]
    supporter_id: EntityId | None = None


class ConsentGiven(Event):
    type_name: ClassVar[str] = "ConsentGiven"
    case_id: EntityId
    party_id: EntityId
    stages: list[Stage]
    given_on: Day


class ConsentWithdrawn(Event):
    type_name: ClassVar[str] = "ConsentWithdrawn"
    case_id: EntityId
    party_id: EntityId
    withdrawn_on: Day


class PersonDataExported(Event):
    """Someone was given everything held about a person: the record a subject access
    request leaves, and the access log of exports. Ids only."""

    type_name: ClassVar[str] = "PersonDataExported"
    person: Literal["client", "supporter"]
    subject_id: EntityId
    command_id: str
    requested_by: str  # the command's source: which tool or service asked


class ClientErased(Event):
    """A client was erased: every service lets go of the case (ids, dates and outcomes
    stay); nothing about them can be read or kept any more."""

    type_name: ClassVar[str] = "ClientErased"
    case_id: EntityId
    command_id: str
    requested_by: str


class SupporterErased(Event):
    """A supporter was erased: no longer proposed; their id stays in past records."""

    type_name: ClassVar[str] = "SupporterErased"
    supporter_id: EntityId
    command_id: str
    requested_by: str


COMMANDS: tuple[type[Command], ...] = (
    RegisterSupporter,
    UpdateSupporter,
    RecordVettingEvidence,
    SubmitIntake,
    ChangeCaseStage,
    NameSupportPerson,
    GiveConsent,
    WithdrawConsent,
    ExportPersonData,
    EraseClient,
    EraseSupporter,
)

EVENTS: tuple[type[Event], ...] = (
    SupporterRegistered,
    SupporterUpdated,
    VettingEvidenceRecorded,
    IntakeReceived,
    CaseStageChanged,
    SupportPersonNamed,
    ConsentGiven,
    ConsentWithdrawn,
    PersonDataExported,
    ClientErased,
    SupporterErased,
)
