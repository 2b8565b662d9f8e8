"""Intake decisions: given a command and the current record, the new record and its events.

Pure functions, no I/O. A command that cannot be carried out raises
``Refused`` with each failing field and the reason, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from contracts.envelope import Command
from contracts.intake import (
    CaseStageChanged,
    ChangeCaseStage,
    ConsentGiven,
    ConsentWithdrawn,
    GiveConsent,
    IntakeReceived,
    NameSupportPerson,
    PeerSupporter,
    RecordCheck,
    RecordVettingEvidence,
    RegisterSupporter,
    Stage,
    SubmitIntake,
    SupporterRegistered,
    SupporterUpdated,
    SupportPerson,
    SupportPersonNamed,
    UpdateSupporter,
    VettingEvidence,
    VettingEvidenceRecorded,
    WithdrawConsent,
)
from contracts.records import CaseRecord, ConsentRecord, Record, SupporterRecord
from contracts.replies import field_errors
from contracts.views import DirectoryEntry, EvidenceOnFile
from runtime.changes import Change, Refused


def reject(field: str, reason: str) -> Refused:
    return Refused(field, reason)


@dataclass(frozen=True)
class Context:
    """What a decision may know besides the command and its own record."""

    now: datetime
    # The supporter a command refers to, when it names one (a peer support person).
    referenced_supporter: SupporterRecord | None = None
    # The date now where the organisation works (its scheduling time zone): the handler
    # reads it. Without it, the latest date anywhere on earth (UTC+14): a day after that has
    # happened nowhere yet.
    local_today: date | None = None

    @property
    def today(self) -> date:
        return self.local_today or (self.now.astimezone(UTC) + timedelta(hours=14)).date()


def happened(day: date, field: str, what: str, ctx: Context) -> None:
    """Refuse a date after today where the organisation works: ``what`` says why it matters."""
    if day > ctx.today:
        raise reject(field, f"cannot be in the future: {what} (today is {ctx.today} here)")


# Supporters ----------------------------------------------------------------


def register_supporter(
    cmd: RegisterSupporter, current: SupporterRecord | None, ctx: Context
) -> Change[SupporterRecord]:
    if current is not None:
        raise reject("supporter_id", f"supporter {cmd.supporter_id} is already registered")
    record = SupporterRecord(
        supporter_id=cmd.supporter_id,
        profile=cmd.profile,
        registered_at=ctx.now,
        updated_at=ctx.now,
    )
    event = SupporterRegistered(
        supporter_id=cmd.supporter_id,
        region=cmd.profile.region,
        caseload_cap=cmd.profile.caseload_cap,
    )
    return Change(record, [event])


def _existing_supporter(supporter_id: str, current: SupporterRecord | None) -> SupporterRecord:
    if current is None:
        raise reject("supporter_id", f"no supporter {supporter_id} in this organisation")
    return current


def update_supporter(
    cmd: UpdateSupporter, current: SupporterRecord | None, ctx: Context
) -> Change[SupporterRecord]:
    record = _existing_supporter(cmd.supporter_id, current)
    changes = cmd.changes.named()
    changed_fields = sorted(changes)
    suspended = changes.pop("suspended", record.suspended)
    try:
        profile = record.profile.model_validate({**record.profile.model_dump(), **changes})
    except ValidationError as error:  # a change that does not fit the rest of the profile
        raise Refused.each(field_errors(error, "data.changes")) from error
    updated = record.model_copy(
        update={"profile": profile, "suspended": suspended, "updated_at": ctx.now}
    )
    event = SupporterUpdated(
        supporter_id=cmd.supporter_id,
        changed_fields=changed_fields,
        suspended=suspended,
        region=profile.region,
        caseload_cap=profile.caseload_cap,
    )
    return Change(updated, [event])


def record_vetting_evidence(
    cmd: RecordVettingEvidence, current: SupporterRecord | None, ctx: Context
) -> Change[SupporterRecord]:
    record = _existing_supporter(cmd.supporter_id, current)
    evidence = cmd.evidence
    # A record check's expiry is ahead of course; the day it was issued may not be.
    field, day = _dated(evidence)
    happened(day, f"evidence.{field}", "evidence counts once it has happened", ctx)
    updated = record.model_copy(
        update={"vetting": [*record.vetting, evidence], "updated_at": ctx.now}
    )
    on_file = evidence_on_file(evidence)
    event = VettingEvidenceRecorded(
        supporter_id=cmd.supporter_id,
        kind=on_file.kind,
        recorded_for=on_file.recorded_for,
        valid_until=on_file.valid_until,
    )
    return Change(updated, [event])


def evidence_on_file(evidence: VettingEvidence) -> EvidenceOnFile:
    """What may be said of a piece of evidence: its kind and dates, never its content."""
    return EvidenceOnFile(
        kind=evidence.kind,
        recorded_for=_evidence_date(evidence),
        valid_until=evidence.expires_on if isinstance(evidence, RecordCheck) else None,
    )


def _evidence_date(evidence: VettingEvidence) -> date:
    return _dated(evidence)[1]


def _dated(evidence: VettingEvidence) -> tuple[str, date]:
    """The field that dates a piece of evidence (when it happened), and its date."""
    match evidence.kind:
        case "record_check":
            return "issued_on", evidence.issued_on
        case "interview":
            return "held_on", evidence.held_on
        case "reference":
            return "received_on", evidence.received_on
        case "recovery":
            return "since", evidence.since
        case "training":
            return "completed_on", evidence.completed_on
        case "supervision":
            return "attended_on", evidence.attended_on


# Cases ---------------------------------------------------------------------


def submit_intake(
    cmd: SubmitIntake, current: CaseRecord | None, ctx: Context
) -> Change[CaseRecord]:
    if current is not None:
        raise reject("case_id", f"case {cmd.case_id} already exists")
    record = CaseRecord(
        case_id=cmd.case_id,
        intake=cmd,
        stage=cmd.dispute.stage,
        opened_at=ctx.now,
        updated_at=ctx.now,
    )
    event = IntakeReceived(
        case_id=cmd.case_id,
        scheme=cmd.dispute.scheme,
        stage=cmd.dispute.stage,
        party_ids=record.party_ids,
        has_other_support=cmd.has_other_support,
    )
    return Change(record, [event])


def _existing_case(case_id: str, current: CaseRecord | None) -> CaseRecord:
    if current is None:
        raise reject("case_id", f"no case {case_id} in this organisation")
    return current


def change_case_stage(
    cmd: ChangeCaseStage, current: CaseRecord | None, ctx: Context
) -> Change[CaseRecord]:
    case = _existing_case(cmd.case_id, current)
    if case.stage == Stage.CLOSED:
        raise reject("case_id", "the case is closed")
    if cmd.stage == case.stage:
        raise reject("stage", f"the case is already at stage {case.stage.value}")
    event = CaseStageChanged(case_id=case.case_id, from_stage=case.stage, to_stage=cmd.stage)
    closed_at = ctx.now if cmd.stage == Stage.CLOSED else None
    record = case.model_copy(
        update={"stage": cmd.stage, "updated_at": ctx.now, "closed_at": closed_at}
    )
    return Change(record, [event])


def support_person_ref(person: SupportPerson) -> str:
    """A stable reference to a support person that names no one."""
    if isinstance(person, PeerSupporter):
        return f"peer:{person.supporter_id}"
    return f"{person.kind}:{person.contact.email or person.contact.phone}"


def name_support_person(
    cmd: NameSupportPerson, current: CaseRecord | None, ctx: Context
) -> Change[CaseRecord]:
    case = _existing_case(cmd.case_id, current)
    person = cmd.support_person
    if isinstance(person, PeerSupporter):
        supporter = ctx.referenced_supporter
        if supporter is None:
            raise reject(
                "support_person.supporter_id",
                f"no supporter {person.supporter_id} in this organisation",
            )
        if supporter.suspended:
            raise reject("support_person.supporter_id", "the supporter is suspended")
    # Consents given to a previous support person do not carry over.
    updated = case.model_copy(
        update={"support_person": person, "consents": {}, "updated_at": ctx.now}
    )
    event = SupportPersonNamed(
        case_id=case.case_id,
        kind=person.kind,
        supporter_id=person.supporter_id if isinstance(person, PeerSupporter) else None,
    )
    return Change(updated, [event])


def _consenting_party(case: CaseRecord, party_id: str) -> SupportPerson:
    if party_id not in case.party_ids:
        raise reject(
            "party_id",
            f"{party_id} is not a party to case {case.case_id}"
            f" (parties: {', '.join(case.party_ids)})",
        )
    if case.support_person is None:
        raise reject("case_id", "no support person is named on this case yet")
    return case.support_person


def give_consent(cmd: GiveConsent, current: CaseRecord | None, ctx: Context) -> Change[CaseRecord]:
    case = _existing_case(cmd.case_id, current)
    person = _consenting_party(case, cmd.party_id)
    happened(cmd.given_on, "given_on", "consent counts from the day it is given", ctx)
    consent = ConsentRecord(
        party_id=cmd.party_id,
        status="given",
        stages=sorted(set(cmd.stages), key=list(Stage).index),
        on=cmd.given_on,
        support_person_ref=support_person_ref(person),
    )
    updated = case.model_copy(
        update={"consents": {**case.consents, cmd.party_id: consent}, "updated_at": ctx.now}
    )
    event = ConsentGiven(
        case_id=case.case_id, party_id=cmd.party_id, stages=consent.stages, given_on=cmd.given_on
    )
    return Change(updated, [event])


def withdraw_consent(
    cmd: WithdrawConsent, current: CaseRecord | None, ctx: Context
) -> Change[CaseRecord]:
    case = _existing_case(cmd.case_id, current)
    _consenting_party(case, cmd.party_id)
    given = case.consents.get(cmd.party_id)
    if given is None or given.status != "given":
        raise reject("party_id", f"{cmd.party_id} has no consent in force to withdraw")
    happened(
        cmd.withdrawn_on, "withdrawn_on", "a withdrawal holds at once, from the day it is made", ctx
    )
    withdrawn = given.model_copy(update={"status": "withdrawn", "on": cmd.withdrawn_on})
    updated = case.model_copy(
        update={"consents": {**case.consents, cmd.party_id: withdrawn}, "updated_at": ctx.now}
    )
    event = ConsentWithdrawn(
        case_id=case.case_id, party_id=cmd.party_id, withdrawn_on=cmd.withdrawn_on
    )
    return Change(updated, [event])


# Routing: which record a command decides on, and how -------------------------

Decide = Callable[[Any, Any, Context], Change[Any]]


@dataclass(frozen=True)
class Route:
    aggregate: Literal["supporter", "case"]
    record_type: type[Record]
    key: Callable[[Any], str]
    decide: Decide
    # The supporter a command names, loaded for the decision (or None).
    references_supporter: Callable[[Any], str | None] = lambda _: None


def _peer_id(cmd: NameSupportPerson) -> str | None:
    person = cmd.support_person
    return person.supporter_id if isinstance(person, PeerSupporter) else None


def _supporter(decide: Decide) -> Route:
    return Route("supporter", SupporterRecord, lambda c: c.supporter_id, decide)


def _case(decide: Decide, references: Callable[[Any], str | None] = lambda _: None) -> Route:
    return Route("case", CaseRecord, lambda c: c.case_id, decide, references)


ROUTES: dict[type[Command], Route] = {
    RegisterSupporter: _supporter(register_supporter),
    UpdateSupporter: _supporter(update_supporter),
    RecordVettingEvidence: _supporter(record_vetting_evidence),
    SubmitIntake: _case(submit_intake),
    ChangeCaseStage: _case(change_case_stage),
    NameSupportPerson: _case(name_support_person, _peer_id),
    GiveConsent: _case(give_consent),
    WithdrawConsent: _case(withdraw_consent),
}


def client_entry(case: CaseRecord) -> DirectoryEntry:
    """What the client of ``case`` is found by in the console's search."""
    client = case.intake.client
    return DirectoryEntry(
        person="client",
        subject_id=case.case_id,
        display_name=client.display_name,
        email=client.contact.email,
        phone=client.contact.phone,
    )


def supporter_entry(supporter: SupporterRecord) -> DirectoryEntry:
    profile = supporter.profile
    return DirectoryEntry(
        person="supporter",
        subject_id=supporter.supporter_id,
        display_name=profile.display_name,
        email=profile.contact.email,
        phone=profile.contact.phone,
    )
