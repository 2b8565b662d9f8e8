"""Intake's command handler: contract in, domain decision, events out.

``handle_command`` takes the raw subject and bytes of a request and returns
the reply. It validates against the contracts, refuses a subject/payload org
mismatch, dead-letters what cannot be read as an envelope, and stores an
accepted command exactly once in effect (see ``adapters.Outbox``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext

from alongside.runtime import commands
from alongside.runtime.logging import get_logger
from alongside.runtime.store import (
    Conflict,
    EventPublisher,
    Outbox,
    RecordStore,
    ReplyStore,
    Stored,
    fingerprint,
    flush,
    repeated,
)
from contracts.envelope import Command, RawEnvelope, wrap
from contracts.intake import SERVICE
from contracts.records import CaseRecord, SupporterRecord
from contracts.replies import CommandAccepted, CommandRejected
from services.intake import domain

log = get_logger(__name__)

SOURCE = f"alongside/{SERVICE}"
MAX_CONFLICT_RETRIES = 10
_EVENT_NAMESPACE = uuid.UUID("6f1c2a52-4d0e-4f59-9b7e-3d0c2f6f7a10")

Reply = CommandAccepted | CommandRejected


@dataclass(frozen=True)
class IntakeDeps:
    js: JetStreamContext
    supporters: RecordStore[SupporterRecord]
    cases: RecordStore[CaseRecord]
    replies: ReplyStore
    events: EventPublisher
    clock: Callable[[], datetime]


def event_id(org: str, command_id: str, index: int) -> str:
    """Deterministic, so a retried command republishes the same ids (and JetStream dedupes)."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{org}:{command_id}:{index}").hex


async def handle_command(
    subject: str, body: bytes, headers: Mapping[str, str], deps: IntakeDeps
) -> Reply:
    received = await commands.receive(deps.js, SERVICE, subject, body, headers)
    if isinstance(received, CommandRejected):
        return received
    return await _decide_once(received.org, received.envelope, received.command, deps)


async def _decide_once(
    org: str, envelope: RawEnvelope, command: Command, deps: IntakeDeps
) -> Reply:
    print_ = fingerprint(command)
    route = domain.ROUTES[type(command)]
    store: RecordStore[Any] = deps.supporters if route.aggregate == "supporter" else deps.cases
    entity_id = route.key(command)
    for _ in range(MAX_CONFLICT_RETRIES):
        # Record first, reply second: a flush stores the reply before it clears
        # the outbox, so a command already done shows up in one or the other.
        stored, revision = await store.load(org, entity_id)
        previous = await deps.replies.get(org, envelope.id)
        if previous is not None:
            return repeated(
                envelope.type, envelope.id, previous.fingerprint, previous.reply, print_
            )
        if stored is not None and stored.outbox is not None:
            await _flush(org, entity_id, store, stored, revision, deps)
            if stored.outbox.command_id == envelope.id and stored.outbox.reply is not None:
                return repeated(
                    envelope.type, envelope.id, stored.outbox.fingerprint, stored.outbox.reply,
                    print_,
                )  # fmt: skip
            stored, revision = await store.load(org, entity_id)

        ctx = await _context(org, route, command, deps)
        try:
            decision = route.decide(command, stored.record if stored else None, ctx)
        except domain.Rejected as rejected:
            return CommandRejected(
                command_id=envelope.id, command_type=envelope.type, errors=rejected.errors
            )

        events = [
            wrap(
                event, org=org, source=SOURCE, id=event_id(org, envelope.id, index), time=ctx.now,
                correlationid=envelope.correlationid or envelope.id, causationid=envelope.id,
            )
            for index, event in enumerate(decision.events)
        ]  # fmt: skip
        reply = CommandAccepted(
            command_id=envelope.id,
            command_type=envelope.type,
            event_ids=[e.id for e in events],
        )
        outbox = Outbox(
            command_id=envelope.id,
            fingerprint=print_,
            reply=reply,
            events=[e.model_dump_json() for e in events],
        )
        new = store.stored(decision.record, outbox)
        try:
            revision = await store.save(org, entity_id, new, revision)
        except Conflict:
            continue  # another replica changed it first: decide again on the new state
        await _flush(org, entity_id, store, new, revision, deps)
        log.info("command_accepted", org=org, command_type=envelope.type, command_id=envelope.id)
        return reply
    return commands.rejected(
        envelope.type, envelope.id, "id", "too many concurrent changes to this record; retry"
    )


async def _context(
    org: str, route: domain.Route, command: Command, deps: IntakeDeps
) -> domain.Context:
    supporter_id = route.references_supporter(command)
    supporter = None
    if supporter_id is not None:
        stored, _ = await deps.supporters.load(org, supporter_id)
        supporter = stored.record if stored else None
    return domain.Context(now=deps.clock(), referenced_supporter=supporter)


async def _flush(
    org: str, entity_id: str, store: RecordStore[Any], stored: Stored[Any], revision: int,
    deps: IntakeDeps,
) -> None:  # fmt: skip
    await flush(org, entity_id, store, stored, revision, deps.events, deps.replies)
