"""Receiving command requests: the checks every request/reply service makes first.

A request becomes a ``Received`` command for the service's handler of its type, or a
``CommandRejected`` naming each failing field. What cannot be read as an envelope at
all is also dead-lettered with the reason, so a malformed request is both answered and
kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext
from pydantic import ValidationError

from contracts import subjects
from contracts.envelope import MAX_COMMAND_BYTES, Command, Message, RawEnvelope, unreadable_version
from contracts.replies import CommandRejected, FieldError, field_errors
from runtime import bus, metrics, topology
from runtime.clock import Clock
from runtime.dispatch import Handlers, Received, handling
from runtime.logging import get_logger
from runtime.registry import Registry
from runtime.settings import Settings
from runtime.vault import Erased

log = get_logger(__name__)

D = TypeVar("D")


def rejected(command_type: str, command_id: str | None, field: str, reason: str) -> CommandRejected:
    return CommandRejected(
        command_id=command_id,
        command_type=command_type,
        errors=[FieldError(field=field, reason=reason)],
    )


async def receive(
    js: JetStreamContext, handlers: Handlers[Any], subject: str, body: bytes,
    headers: Mapping[str, str], clock: Clock, letters: bus.DeadLetters,
    registry: Registry | None = None,
) -> Received | CommandRejected:  # fmt: skip
    """``registry``: refuse organisations not registered (or disabled) before anything else;
    None only where no registry applies (a test of parsing alone). ``letters`` seals what a
    malformed command is dead-lettered with."""
    command_type = subjects.last_token(subject)
    service = handlers.service
    try:
        org = subjects.org_of(subject)
    except subjects.SubjectError as error:
        return rejected(command_type, None, "subject", str(error))
    refusal = await registry.refusal(org) if registry is not None else None
    if refusal is not None:
        return rejected(command_type, None, "org", refusal)

    route = handlers.commands.get(command_type)
    if route is None:
        return rejected(command_type, None, "type", f"{service} has no command {command_type!r}")

    try:
        if len(body) > MAX_COMMAND_BYTES:
            raise ValueError(f"{len(body)} bytes; a command may have at most {MAX_COMMAND_BYTES}")
        envelope = RawEnvelope.model_validate_json(body)
    except (ValueError, ValidationError) as error:
        errors = (
            field_errors(error)
            if isinstance(error, ValidationError)
            else [FieldError(field="body", reason=str(error))]
        )
        reason = "; ".join(f"{e.field}: {e.reason}" for e in errors)
        await letters.keep(
            js, org=org, service=service, reason=f"malformed envelope: {reason}",
            subject=subject, body=body, headers=headers, time=clock(),
        )  # fmt: skip
        return CommandRejected(command_id=None, command_type=command_type, errors=errors)

    if envelope.org != org:
        log.warning("org_mismatch", subject_org=org, command_type=command_type)
        return rejected(
            command_type, envelope.id, "org",
            f"the subject is for organisation {org!r} but the message says {envelope.org!r}",
        )  # fmt: skip
    if envelope.type != command_type:
        return rejected(
            command_type, envelope.id, "type",
            f"the subject is for {command_type} but the message says {envelope.type}",
        )  # fmt: skip

    unreadable = unreadable_version(envelope.schemaversion, route.model)
    if unreadable is not None:
        return rejected(command_type, envelope.id, "schemaversion", unreadable)
    try:
        command = route.model.model_validate(envelope.data)
    except ValidationError as error:
        return CommandRejected(
            command_id=envelope.id, command_type=command_type, errors=field_errors(error, "data")
        )
    except (TypeError, ArithmeticError) as error:  # a validator met values it cannot compare
        return rejected(command_type, envelope.id, "data", f"cannot be read: {error}")
    assert isinstance(command, Command)
    return Received(org, envelope, command)


def _counted(handlers: Handlers[Any], subject: str, reply: Message, outcome: str) -> bytes:
    command_type = subjects.last_token(subject)
    if subject.split(".")[1] != subjects.READINESS_PROBE_ORG:  # a service starting, not a client
        # Only known types as labels: a subject's last token is anyone's to choose.
        known = command_type if command_type in handlers.commands else "unknown"
        metrics.COMMANDS.labels(handlers.service, known, outcome).inc()
    return reply.model_dump_json().encode()


def serve(
    broker: NatsBroker, handlers: Handlers[D], deps: D, workers: int, clock: Clock,
    settings: Settings,
) -> None:  # fmt: skip
    """Answer every command of the service with its handler, in a queue group so that
    replicas share them, ``workers`` at a time (KV revisions keep commands on one record
    serial in effect)."""

    registries: list[Registry] = []  # bound on the first command, once connected
    letters = bus.DeadLetters(settings)

    @broker.subscriber(
        subjects.commands_of(handlers.service),
        queue=handlers.service,
        max_workers=workers,
        title=f"{handlers.service} commands",
        decoder=bus.the_message,
    )
    async def on_command(message: Any) -> bytes:
        raw = cast(NatsMessage, message).raw_message
        command_type, command_id = subjects.last_token(raw.subject), None
        try:
            js = broker.connection.jetstream()
            if not registries:
                registries.append(Registry(await js.key_value(topology.REGISTRY_BUCKET), clock))
            received = await receive(js, handlers, raw.subject, raw.data, raw.headers or {},
                                     clock, letters, registries[0])  # fmt: skip
            if isinstance(received, CommandRejected):
                return _counted(handlers, raw.subject, received, received.status)
            command_id = received.envelope.id
            route = handlers.commands[received.envelope.type]
            with handling(received.envelope):
                reply = await route.handler(received.command, received, deps)
        except Erased:
            erased = "it is about someone erased: nothing more is kept for them"
            reply = rejected(command_type, command_id, "data", erased)
            return _counted(handlers, raw.subject, reply, reply.status)
        except Exception as error:
            # Still answered: the client learns it failed, and may retry with the same id
            # (what was committed, if anything, is answered the same way then).
            failed = type(error).__name__
            log.exception("command_failed", service=handlers.service,
                          command_type=command_type, error=failed)  # fmt: skip
            reply = rejected(command_type, command_id, "id",
                             f"could not be carried out ({failed}); retry later")  # fmt: skip
            return _counted(handlers, raw.subject, reply, "failed")
        return _counted(handlers, raw.subject, reply, reply.status)
