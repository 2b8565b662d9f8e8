"""Intake's command handlers: contract in, domain decision, events out.

Every command of intake decides on one record (a supporter or a case) through
``domain.ROUTES`` and is committed exactly once in effect by that record's
unit of work (``runtime.unit``: record and outbox in one compare-and-set write, then
the outbox flushed). What a decision needs besides its own record (the supporter a command
names, the organisation's time zone, for its date now) is read first, outside the retry
loop; the decision itself is pure.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from contracts.envelope import Command, Event, wrap
from contracts.intake import (
    SERVICE,
    ClientErased,
    EraseClient,
    EraseSupporter,
    ExportPersonData,
    PersonData,
    PersonDataExported,
    SupporterErased,
)
from contracts.records import CaseRecord, SupporterRecord
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import Kind
from contracts.views import (
    CaseView,
    CaseViewed,
    DecisionView,
    DecisionViewed,
    Directory,
    DirectoryRead,
    ReadDirectory,
    SupporterView,
    SupporterViewed,
    ViewCase,
    ViewDecision,
    ViewSupporter,
    WhyIneligible,
)
from runtime.changes import Change, Refused, Removal, command_field
from runtime.clock import Clock
from runtime.commands import rejected
from runtime.dispatch import Handlers, Received
from runtime.logging import get_logger
from runtime.registry import Registry
from runtime.settings import Settings
from runtime.state import Policies
from runtime.store import R
from runtime.unit import EventKey, EventPublisher, UnitOfWork
from runtime.vault import Erased, Person, Vault
from services.intake import domain
from services.intake.exports import Holdings

log = get_logger(__name__)

SOURCE = f"alongside/{SERVICE}"
_EVENT_NAMESPACE = uuid.UUID("6f1c2a52-4d0e-4f59-9b7e-3d0c2f6f7a10")

Reply = CommandAccepted | CommandRejected


@dataclass(frozen=True)
class IntakeDeps:
    supporters: UnitOfWork[SupporterRecord]
    cases: UnitOfWork[CaseRecord]
    holdings: Holdings
    events: EventPublisher
    vault: Vault
    registry: Registry
    policies: Policies  # read only: the organisation's time zone, for its date
    settings: Settings
    clock: Clock


def event_id(org: str, command_id: str, index: int) -> str:
    """Deterministic, so a retried command republishes the same ids (and JetStream dedupes)."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{org}:{command_id}:{index}").hex


def event_id_of(key: EventKey) -> str:
    assert key.command_id is not None, "intake changes records only by command"
    return event_id(key.org, key.command_id, key.index)


handlers: Handlers[IntakeDeps] = Handlers(SERVICE)


async def decide_command(command: Command, received: Received, deps: IntakeDeps) -> Reply:
    """Every intake command: gather what the decision needs, then decide and commit."""
    route = domain.ROUTES[type(command)]
    records: UnitOfWork[Any] = deps.supporters if route.aggregate == "supporter" else deps.cases
    supporter_id = route.references_supporter(command)
    supporter = None
    if supporter_id is not None:
        stored, _ = await deps.supporters.store.load(received.org, supporter_id)
        supporter = stored.record if stored else None
    # Dates of evidence and consent are the organisation's: its today, in its zone.
    zone = ZoneInfo((await deps.policies.get(received.org)).time_zone)

    def decide(record: Any, _: None) -> Change[Any]:
        now = deps.clock()
        ctx = domain.Context(
            now=now, referenced_supporter=supporter, local_today=now.astimezone(zone).date()
        )
        return route.decide(command, record, ctx)

    try:
        outcome = await records.change(received.org, route.key(command), decide, command=received)
    except Erased:
        field = "data.supporter_id" if route.aggregate == "supporter" else "data.case_id"
        reason = f"this {route.aggregate} was erased: nothing more is kept for them"
        return rejected(command.type_name, received.envelope.id, field, reason)
    reply = outcome.answer
    if isinstance(reply, CommandAccepted):
        log.info(
            "command_accepted",
            org=received.org,
            command_type=reply.command_type,
            command_id=reply.command_id,
        )
    return reply


for _command in domain.ROUTES:
    handlers.on(_command)(decide_command)


@handlers.on(ExportPersonData)
async def export_person_data(
    command: ExportPersonData, received: Received, deps: IntakeDeps
) -> PersonData | CommandRejected:
    """Everything held about one person. Nothing of it is stored (not even as the reply
    kept for a retry); that it was given, to whom, is published first, so no export goes
    unrecorded."""
    org, subject_id = received.org, command.subject_id
    gather = deps.holdings.of_client if command.person == "client" else deps.holdings.of_supporter
    try:
        held = await gather(org, subject_id)
        if not held:
            await deps.vault.key(org, command.person, subject_id)  # Erased, if they were
    except Erased:
        erased = f"this {command.person} was erased: nothing is held about them"
        return rejected(ExportPersonData.type_name, received.envelope.id, "data.subject_id", erased)
    if not held:
        return rejected(
            ExportPersonData.type_name,
            received.envelope.id,
            "data.subject_id",
            f"no {command.person} {subject_id} is held here",
        )
    exported = PersonDataExported(
        person=command.person,
        subject_id=subject_id,
        command_id=received.envelope.id,
        requested_by=received.acted_by,
    )
    await recorded(exported, received, deps)
    log.info(
        "person_data_exported",
        org=org,
        person=command.person,
        subject_id=subject_id,
        command_id=received.envelope.id,
        requested_by=received.acted_by,
    )
    return PersonData(
        command_id=received.envelope.id,
        person=command.person,
        subject_id=subject_id,
        exported_at=deps.clock(),
        held=held,
    )


@handlers.on(ViewCase)
async def view_case(
    command: ViewCase, received: Received, deps: IntakeDeps
) -> CaseView | CommandRejected:
    """A case as its services hold it now; that it was seen, and by whom, is published
    first (the access log)."""
    org, case_id, command_id = received.org, command.case_id, received.envelope.id
    case = await held(deps.cases, "client", case_id, received, deps)
    if isinstance(case, CommandRejected):
        return case
    matching, _ = await deps.holdings.matches.load(org, case_id)
    schedule, _ = await deps.holdings.schedules.load(org, case_id)
    viewed = CaseViewed(case_id=case_id, command_id=command_id, viewed_by=received.acted_by)
    await recorded(viewed, received, deps)
    log.info(
        "case_viewed", org=org, case_id=case_id, command_id=command_id, viewed_by=received.acted_by
    )
    return CaseView(
        command_id=command_id,
        viewed_at=deps.clock(),
        case=case,
        matching=matching.record if matching else None,
        schedule=schedule.record if schedule else None,
    )


@handlers.on(ViewSupporter)
async def view_supporter(
    command: ViewSupporter, received: Received, deps: IntakeDeps
) -> SupporterView | CommandRejected:
    """A supporter as their services hold them now (their vetting by kind and date, never
    its content); that they were seen, and by whom, is published first."""
    org, supporter_id, command_id = received.org, command.supporter_id, received.envelope.id
    supporter = await held(deps.supporters, "supporter", supporter_id, received, deps)
    if isinstance(supporter, CommandRejected):
        return supporter
    decision, _ = await deps.holdings.decisions.get(org, Kind.ELIGIBILITY, supporter_id)
    caseload, _ = await deps.holdings.caseloads.load(org, supporter_id)
    supervision, _ = await deps.holdings.supervision.load(org, supporter_id)
    viewed = SupporterViewed(
        supporter_id=supporter_id, command_id=command_id, viewed_by=received.acted_by
    )
    await recorded(viewed, received, deps)
    log.info(
        "supporter_viewed",
        org=org,
        supporter_id=supporter_id,
        command_id=command_id,
        viewed_by=received.acted_by,
    )
    return SupporterView(
        command_id=command_id,
        viewed_at=deps.clock(),
        supporter_id=supporter_id,
        profile=supporter.profile,
        suspended=supporter.suspended,
        registered_at=supporter.registered_at,
        vetting=[domain.evidence_on_file(e) for e in supporter.vetting],
        eligible=decision.outcome == "eligible" if decision else None,
        lapses_on=decision.lapses_on if decision else None,
        ineligible_because=[
            WhyIneligible(rule=f.rule, label=f.named, reason=f.reason or None)
            for f in (decision.fired if decision else [])
            if f.outcome == "ineligible"
        ],
        caseload=caseload.holds,
        supervision=supervision.record if supervision else None,
    )


@handlers.on(ReadDirectory)
async def read_directory(command: ReadDirectory, received: Received, deps: IntakeDeps) -> Directory:
    """Names and contact details for the console's search; how many were read, and by
    whom, is published first. A record not held (never, or erased) is left out."""
    org, command_id = received.org, received.envelope.id
    read = DirectoryRead(
        command_id=command_id,
        read_by=received.acted_by,
        clients=len(command.case_ids),
        supporters=len(command.supporter_ids),
    )
    await recorded(read, received, deps)
    cases = await asyncio.gather(*(_stored(deps.cases, org, i) for i in command.case_ids))
    supporters = await asyncio.gather(
        *(_stored(deps.supporters, org, i) for i in command.supporter_ids)
    )
    entries = [domain.client_entry(c) for c in cases if c is not None]
    entries += [domain.supporter_entry(s) for s in supporters if s is not None]
    log.info("directory_read", org=org, command_id=command_id, read_by=received.acted_by)
    return Directory(command_id=command_id, read_at=deps.clock(), entries=entries)


async def _stored(records: UnitOfWork[R], org: str, subject_id: str) -> R | None:
    try:
        stored, _ = await records.store.load(org, subject_id)
    except Erased:
        return None
    return stored.record if stored is not None else None


@handlers.on(ViewDecision)
async def view_decision(
    command: ViewDecision, received: Received, deps: IntakeDeps
) -> DecisionView | CommandRejected:
    """Why a decision about a person was made, from the decision log; that it was read, and
    by whom, is published first. The console lets only supervisors and operators ask."""
    org, command_id = received.org, received.envelope.id
    logged = await deps.holdings.log.find(org, command.decision_id)
    if logged is None:
        return rejected(
            ViewDecision.type_name,
            command_id,
            "data.decision_id",
            f"no decision {command.decision_id} is in the decision log (entries "
            "past the audit period are gone)",
        )
    decision = logged.decision
    viewed = DecisionViewed(
        decision_id=command.decision_id,
        kind=decision.kind,
        subject_id=decision.subject_id,
        command_id=command_id,
        viewed_by=received.acted_by,
    )
    await recorded(viewed, received, deps)
    log.info(
        "decision_viewed",
        org=org,
        decision_id=command.decision_id,
        command_id=command_id,
        viewed_by=received.acted_by,
    )
    return DecisionView(command_id=command_id, viewed_at=deps.clock(), logged=logged)


async def held(
    records: UnitOfWork[R], person: Person, subject_id: str, received: Received, deps: IntakeDeps
) -> R | CommandRejected:
    """The person's record for a view, or the refusal: erased, or not held here."""
    field = "data.case_id" if person == "client" else "data.supporter_id"
    what = "case" if person == "client" else "supporter"
    try:
        stored, _ = await records.store.load(received.org, subject_id)
        if stored is None:
            await deps.vault.key(received.org, person, subject_id)  # Erased, if they were
    except Erased:
        return rejected(
            received.envelope.type,
            received.envelope.id,
            field,
            f"this {person} was erased: nothing is held about them",
        )
    if stored is None:
        return rejected(
            received.envelope.type,
            received.envelope.id,
            field,
            f"no {what} {subject_id} is held here",
        )
    return stored.record


async def recorded(event: Event, received: Received, deps: IntakeDeps) -> None:
    """Publish that something was read (an export, a view), before it is answered: its id
    derives from the command's, so a retry records it once."""
    org, command = received.org, received.envelope
    envelope = wrap(
        event,
        org=org,
        source=SOURCE,
        time=deps.clock(),
        cause=command,
        id=event_id(org, command.id, 0),
    )
    await deps.events.publish([envelope.model_dump_json()])


@handlers.on(EraseClient)
async def erase_client(command: EraseClient, received: Received, deps: IntakeDeps) -> Reply:
    erased = ClientErased(
        case_id=command.case_id, command_id=received.envelope.id, requested_by=received.acted_by
    )
    return await erase(received, deps.cases, "client", command.case_id, erased, deps)


@handlers.on(EraseSupporter)
async def erase_supporter(command: EraseSupporter, received: Received, deps: IntakeDeps) -> Reply:
    caseload, _ = await deps.holdings.caseloads.load(received.org, command.supporter_id)
    held = caseload.taken(deps.clock())
    if held:
        return rejected(
            EraseSupporter.type_name,
            received.envelope.id,
            "data.supporter_id",
            f"{held} client(s) are proposed to or supported by this supporter: "
            "change their supporter first",
        )
    erased = SupporterErased(
        supporter_id=command.supporter_id,
        command_id=received.envelope.id,
        requested_by=received.acted_by,
    )
    return await erase(received, deps.supporters, "supporter", command.supporter_id, erased, deps)


async def erase(
    received: Received,
    records: UnitOfWork[Any],
    person: Person,
    subject_id: str,
    erased: Event,
    deps: IntakeDeps,
) -> Reply:
    """Destroy the person's key (every copy of their data, sealed with it, is unreadable from
    then on), remove their record, then announce it. Each step may be repeated, so a retry
    of the same command after a crash finishes the job; another command is refused."""
    org, command_id, command_type = received.org, received.envelope.id, received.envelope.type
    field = "case_id" if person == "client" else "supporter_id"
    try:
        known = await deps.vault.key(org, person, subject_id) is not None
    except Erased as gone:
        if gone.by != command_id:
            why = f"this {person} was already erased"
            return rejected(command_type, command_id, command_field(field), why)
        # This very command destroyed the key before a crash: its record, unreadable now,
        # goes too, and the command finishes.
        await records.store.remove(org, subject_id)
        known = True

    async def destroy_key() -> None:
        await deps.vault.erase(org, person, subject_id, by=command_id)

    def decide(record: Any, _: None) -> Removal:
        if record is None and not known:
            raise Refused(field, f"no {person} {subject_id} is held here")
        return Removal([erased], first=destroy_key)

    reply = (await records.change(org, subject_id, decide, command=received)).answer
    if isinstance(reply, CommandAccepted):
        log.info(
            "person_erased",
            org=org,
            person=person,
            subject_id=subject_id,
            command_id=command_id,
            requested_by=received.acted_by,
        )
    return reply


async def finish_outboxes(deps: IntakeDeps, settle_s: float = 0.0) -> int:
    """Carry out every outbox a crash left behind (at start, and from the sweep, which leaves
    those younger than ``settle_s`` to the handler still on them): a case committed but never
    announced gets its ``IntakeReceived`` even if nobody touches it again. Returns how many;
    in a healthy run, none."""
    return await deps.supporters.flush_pending(settle_s=settle_s) + await deps.cases.flush_pending(
        settle_s=settle_s
    )
