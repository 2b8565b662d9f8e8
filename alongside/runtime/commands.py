"""Reading a command request: the checks every request/reply service makes first.

A request becomes a ``Received`` command, or a ``CommandRejected`` naming each
failing field. What cannot be read as an envelope at all is also dead-lettered
with the reason, so a malformed request is both answered and kept.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext
from pydantic import ValidationError

from alongside.runtime import bus
from alongside.runtime.logging import get_logger
from contracts import catalogue, subjects
from contracts.envelope import Command, Message, RawEnvelope
from contracts.replies import CommandRejected, FieldError

log = get_logger(__name__)


@dataclass(frozen=True)
class Received:
    org: str
    envelope: RawEnvelope
    command: Command


def rejected(command_type: str, command_id: str | None, field: str, reason: str) -> CommandRejected:
    return CommandRejected(
        command_id=command_id,
        command_type=command_type,
        errors=[FieldError(field=field, reason=reason)],
    )


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    return [
        FieldError(
            field=".".join([p for p in [prefix] if p] + [str(part) for part in e["loc"]]) or prefix,
            reason=e["msg"],
        )
        for e in error.errors()
    ]


async def receive(
    js: JetStreamContext, service: str, subject: str, body: bytes, headers: Mapping[str, str]
) -> Received | CommandRejected:
    command_type = subjects.last_token(subject)
    try:
        org = subjects.org_of(subject)
    except subjects.SubjectError as error:
        return rejected(command_type, None, "subject", str(error))

    model = catalogue.COMMANDS.get(command_type)
    if model is None or model.service != service:
        return rejected(command_type, None, "type", f"{service} has no command {command_type!r}")

    try:
        envelope = RawEnvelope.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        if isinstance(error, ValidationError):
            errors = field_errors(error)
            reason = "; ".join(f"{e.field}: {e.reason}" for e in errors)
        else:
            errors = [FieldError(field="body", reason="not a JSON document")]
            reason = f"not JSON: {error}"
        await bus.dead_letter(
            js, org=org, service=service, reason=f"malformed envelope: {reason}",
            subject=subject, body=body, headers=headers,
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

    try:
        command = model.model_validate(envelope.data)
    except ValidationError as error:
        return CommandRejected(
            command_id=envelope.id, command_type=command_type, errors=field_errors(error, "data")
        )
    return Received(org, envelope, command)


Handler = Callable[[str, bytes, Mapping[str, str]], Awaitable[Message]]


def serve(broker: NatsBroker, service: str, workers: int, handle: Handler) -> None:
    """Answer every command of ``service``, in a queue group so that replicas share them,
    ``workers`` at a time (KV revisions keep commands on one record serial in effect)."""

    @broker.subscriber(
        subjects.commands_of(service),
        queue=service,
        max_workers=workers,
        title=f"{service} commands",
    )
    async def on_command(message: NatsMessage) -> bytes:
        raw = message.raw_message
        reply = await handle(raw.subject, raw.data, raw.headers or {})
        return reply.model_dump_json().encode()
