"""Intake's command handlers: contract in, domain decision, events out.

Every command of intake decides on one record (a supporter or a case) through
``domain.ROUTES`` and is committed exactly once in effect by that record's
``Changer`` (record and outbox in one compare-and-set write, then the outbox
flushed). What a decision needs besides its own record (the supporter a command
names) is read first, outside the retry loop; the decision itself is pure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from contracts.envelope import Command, wrap
from contracts.intake import SERVICE, ExportPersonData, PersonData, PersonDataExported
from contracts.records import CaseRecord, SupporterRecord
from contracts.replies import CommandAccepted, CommandRejected
from runtime.changes import Change
from runtime.clock import Clock
from runtime.commands import rejected
from runtime.dispatch import Handlers, Received
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.store import Changer, EventKey, EventPublisher
from services.intake import domain
from services.intake.exports import Holdings

log = get_logger(__name__)

SOURCE = f"alongside/{SERVICE}"
_EVENT_NAMESPACE = uuid.UUID("6f1c2a52-4d0e-4f59-9b7e-3d0c2f6f7a10")

Reply = CommandAccepted | CommandRejected


@dataclass(frozen=True)
class IntakeDeps:
    supporters: Changer[SupporterRecord]
    cases: Changer[CaseRecord]
    holdings: Holdings
    events: EventPublisher
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
    changer: Changer[Any] = deps.supporters if route.aggregate == "supporter" else deps.cases
    supporter_id = route.references_supporter(command)
    supporter = None
    if supporter_id is not None:
        stored, _ = await deps.supporters.store.load(received.org, supporter_id)
        supporter = stored.record if stored else None

    async def decide(record: Any) -> Change[Any]:
        ctx = domain.Context(now=deps.clock(), referenced_supporter=supporter)
        return route.decide(command, record, ctx)

    reply = await changer.change(received.org, route.key(command), decide, received)
    assert reply is not None  # a command is always answered
    if isinstance(reply, CommandAccepted):
        log.info("command_accepted", org=received.org, command_type=reply.command_type,
                 command_id=reply.command_id)  # fmt: skip
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
    held = await gather(org, subject_id)
    if not held:
        return rejected(ExportPersonData.type_name, received.envelope.id, "data.subject_id",
                        f"no {command.person} {subject_id} is held here")  # fmt: skip
    exported = PersonDataExported(person=command.person, subject_id=subject_id,
                                  command_id=received.envelope.id,
                                  requested_by=received.envelope.source)  # fmt: skip
    envelope = wrap(exported, org=org, source=SOURCE, time=deps.clock(), cause=received.envelope,
                    id=event_id(org, received.envelope.id, 0))  # fmt: skip
    await deps.events.publish([envelope.model_dump_json()])
    log.info("person_data_exported", org=org, person=command.person, subject_id=subject_id,
             command_id=received.envelope.id, requested_by=received.envelope.source)  # fmt: skip
    return PersonData(command_id=received.envelope.id, person=command.person,
                      subject_id=subject_id, exported_at=deps.clock(), held=held)  # fmt: skip


async def finish_outboxes(deps: IntakeDeps, settle_s: float = 0.0) -> int:
    """Carry out every outbox a crash left behind (at start, and from the sweep, which leaves
    those younger than ``settle_s`` to the handler still on them): a case committed but never
    announced gets its ``IntakeReceived`` even if nobody touches it again. Returns how many;
    in a healthy run, none."""
    return (await deps.supporters.flush_pending(settle_s=settle_s)
            + await deps.cases.flush_pending(settle_s=settle_s))  # fmt: skip
