"""Receiving command requests: the checks every request/reply service makes first.

A request becomes a ``Received`` command for the service's handler of its type, or a
``CommandRejected`` naming each failing field. What cannot be read as an envelope at
all is also dead-lettered with the reason, so a malformed request is both answered and
kept. A handler that raises is answered ``CommandUnavailable`` (not carried out just then:
send the same command again), never a rejection: a client tells the two apart by status.
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
from contracts.replies import (
    CommandRejected,
    CommandUnavailable,
    DeadLetter,
    FieldError,
    field_errors,
)
from runtime import bus, metrics, topology
from runtime.changes import Contended, NotYet
from runtime.clock import Clock
from runtime.dispatch import SERVICES, Handlers, Received, handling
from runtime.logging import get_logger
from runtime.registry import Registry
from runtime.settings import Settings
from runtime.vault import Erased

log = get_logger(__name__)

D = TypeVar("D")


# What a person reads when a command was not carried out just now, by cause; plain words,
# never the exception (that goes to the log). Each ends saying what to do.
_AGAIN = "Send the same command again, with the same id: however often it is sent, it counts once."
NOT_CARRIED_OUT = f"The service could not carry this out just now. {_AGAIN}"
BUSY = f"What this changes was being changed by others at the same moment. {_AGAIN}"
NOT_READY = f"Something this needs was not ready just now. {_AGAIN}"


def rejected(command_type: str, command_id: str | None, field: str, reason: str) -> CommandRejected:
    return CommandRejected(
        command_id=command_id,
        command_type=command_type,
        errors=[FieldError(field=field, reason=reason)],
    )


def unavailable(
    command_type: str,
    command_id: str | None,
    reason: str = NOT_CARRIED_OUT,
    retry_after_s: float = 1.0,
) -> CommandUnavailable:
    """Not carried out just now, and not a refusal: the client sends the same command (same
    id) again after ``retry_after_s``. ``reason``: plain words for a person."""
    return CommandUnavailable(
        command_id=command_id, command_type=command_type, reason=reason, retry_after_s=retry_after_s
    )


def unavailable_for(
    error: Exception, command_type: str, command_id: str | None, retry_after_s: float
) -> CommandUnavailable:
    """The reply to a command whose handler raised ``error``, in words fit for a person."""
    reason = (
        BUSY
        if isinstance(error, Contended)
        else NOT_READY
        if isinstance(error, NotYet)
        else NOT_CARRIED_OUT
    )
    return unavailable(command_type, command_id, reason, retry_after_s)


async def receive(
    js: JetStreamContext,
    handlers: Handlers[Any],
    subject: str,
    body: bytes,
    headers: Mapping[str, str],
    clock: Clock,
    letters: bus.DeadLetters,
    registry: Registry | None = None,
) -> Received | CommandRejected:
    """``registry``: refuse organisations not registered (or disabled) before anything else;
    None only where no registry applies (a test of parsing alone). ``letters`` seals what a
    malformed command is dead-lettered with."""
    command_type = subjects.command_type_of(subject)
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
            js,
            org=org,
            service=service,
            sender=subjects.sender_of(subject) or "unknown",
            reason=f"malformed envelope: {reason}",
            subject=subject,
            body=body,
            headers=headers,
            time=clock(),
            kept=DeadLetter.MALFORMED_KEPT,  # answered with its field errors: not kept whole
        )
        return CommandRejected(command_id=None, command_type=command_type, errors=errors)

    if envelope.org != org:
        log.warning("org_mismatch", subject_org=org, command_type=command_type)
        return rejected(
            command_type,
            envelope.id,
            "org",
            f"the subject is for organisation {org!r} but the message says {envelope.org!r}",
        )
    if envelope.type != command_type:
        return rejected(
            command_type,
            envelope.id,
            "type",
            f"the subject is for {command_type} but the message says {envelope.type}",
        )

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
    return Received(org, envelope, command, subjects.sender_of(subject))


def _counted(handlers: Handlers[Any], subject: str, reply: Message, outcome: str) -> bytes:
    command_type = subjects.command_type_of(subject)
    if subject.split(".")[1] != subjects.READINESS_PROBE_ORG:  # a service starting, not a client
        # Only known types as labels: a subject's last token is anyone's to choose.
        known = command_type if command_type in handlers.commands else "unknown"
        metrics.COMMANDS.labels(handlers.service, known, outcome).inc()
    return reply.model_dump_json().encode()


def answerable(subject: str, reply: str) -> bool:
    """Whether a command's reply subject is an inbox its sender may read: the operator's,
    a service's own, the sending credential's own (``subjects.org_inbox``), or one the
    server made for a request from an organisation's account (``_R_``). NATS lets anyone
    name any reply subject; the server keeps a service's answers to inboxes
    (``access.service_permissions``), and this keeps them to the sender's."""
    sender = subjects.sender_of(subject)
    if reply.startswith("_INBOX."):  # the operator's (or a deployment without auth)
        return True
    if reply.startswith("_R_."):  # from an organisation's account: the server maps it back
        return True  # there, where nothing of ours can be named (docs/decisions/0003)
    if sender in SERVICES:
        return reply.startswith(f"{subjects.service_inbox(sender)}.")
    try:
        return reply.startswith(f"{subjects.org_inbox(subjects.org_of(subject), sender)}.")
    except subjects.SubjectError:
        return False


def serve(
    broker: NatsBroker,
    handlers: Handlers[D],
    deps: D,
    workers: int,
    clock: Clock,
    settings: Settings,
) -> None:
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
        if not answerable(raw.subject, raw.reply):
            # Not its sender's own inbox: an answer there would write into whatever subject
            # the sender named (a bucket, an event). Nothing is done, nothing answered.
            log.warning(
                "reply_refused",
                service=handlers.service,
                sender=subjects.sender_of(raw.subject)[:64],
            )
            cast(NatsMessage, message).reply_to = ""  # so FastStream publishes nothing
            return b""
        try:
            js = broker.connection.jetstream()
            if not registries:
                registries.append(Registry(await js.key_value(topology.REGISTRY_BUCKET), clock))
            received = await receive(
                js,
                handlers,
                raw.subject,
                raw.data,
                raw.headers or {},
                clock,
                letters,
                registries[0],
            )
        except Exception as error:  # the registry or the dead letters not reachable just now
            command_type = subjects.command_type_of(raw.subject)
            failed = _failed(handlers.service, error, command_type, None, settings.retry_after_s)
            return _counted(handlers, raw.subject, failed, "failed")
        if isinstance(received, CommandRejected):
            return _counted(handlers, raw.subject, received, received.status)
        reply, outcome = await carry_out(handlers, received, deps, settings.retry_after_s)
        return _counted(handlers, raw.subject, reply, outcome)


async def carry_out(
    handlers: Handlers[D], received: Received, deps: D, retry_after_s: float
) -> tuple[Message, str]:
    """The handler's reply to a command that passed every check, and the outcome it is
    counted as. A handler that raised is answered as not carried out just now
    (``CommandUnavailable``, counted ``failed``), never as a refusal: the client sends the
    same id again, and what was committed, if anything, is answered the same way then. A
    command about someone erased is refused for good."""
    command_type, command_id = received.envelope.type, received.envelope.id
    route = handlers.commands[command_type]
    try:
        with handling(received.envelope):
            reply: Any = await route.handler(received.command, received, deps)
    except Erased:
        erased = "it is about someone erased: nothing more is kept for them"
        refused = rejected(command_type, command_id, "data", erased)
        return refused, refused.status
    except Exception as error:
        return _failed(handlers.service, error, command_type, command_id, retry_after_s), "failed"
    return reply, reply.status


def _failed(
    service: str,
    error: Exception,
    command_type: str,
    command_id: str | None,
    retry_after_s: float,
) -> CommandUnavailable:
    """The exception is for the log only, never for the person reading the reply."""
    failed = type(error).__name__
    if isinstance(error, NotYet):  # a busy record, a replica behind: no traceback
        log.warning(
            "command_not_yet",
            service=service,
            command_type=command_type,
            error=failed,
            why=str(error),
        )
    else:
        log.exception("command_failed", service=service, command_type=command_type, error=failed)
    return unavailable_for(error, command_type, command_id, retry_after_s)
