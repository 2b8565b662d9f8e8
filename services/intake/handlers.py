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

from contracts.envelope import Command
from contracts.intake import COMMANDS, SERVICE
from contracts.records import CaseRecord, SupporterRecord
from contracts.replies import CommandAccepted, CommandRejected
from runtime.changes import Change
from runtime.clock import Clock
from runtime.dispatch import Handlers, Received
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.store import Changer, EventKey
from services.intake import domain

log = get_logger(__name__)

SOURCE = f"alongside/{SERVICE}"
_EVENT_NAMESPACE = uuid.UUID("6f1c2a52-4d0e-4f59-9b7e-3d0c2f6f7a10")

Reply = CommandAccepted | CommandRejected


@dataclass(frozen=True)
class IntakeDeps:
    supporters: Changer[SupporterRecord]
    cases: Changer[CaseRecord]
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


for _command in COMMANDS:
    handlers.on(_command)(decide_command)


async def finish_outboxes(deps: IntakeDeps, settle_s: float = 0.0) -> int:
    """Carry out every outbox a crash left behind (at start, and from the sweep, which leaves
    those younger than ``settle_s`` to the handler still on them): a case committed but never
    announced gets its ``IntakeReceived`` even if nobody touches it again. Returns how many;
    in a healthy run, none."""
    return (await deps.supporters.flush_pending(settle_s=settle_s)
            + await deps.cases.flush_pending(settle_s=settle_s))  # fmt: skip
