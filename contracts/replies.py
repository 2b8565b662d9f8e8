"""Replies to commands, and the dead letter a service writes for a message it cannot use."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationError

from contracts.envelope import Message, Part
from contracts.privacy import SENSITIVE


class FieldError(Part):
    """One failing field, as a dotted path into the message (``data.client.languages.0``)."""

    field: str
    reason: str


class CommandAccepted(Message):
    type_name: ClassVar[str] = "CommandAccepted"
    status: Literal["accepted"] = "accepted"
    command_id: str
    command_type: str
    event_ids: list[str]


class CommandRejected(Message):
    type_name: ClassVar[str] = "CommandRejected"
    status: Literal["rejected"] = "rejected"
    command_id: str | None
    command_type: str
    errors: list[FieldError] = Field(min_length=1)


class CommandUnavailable(Message):
    """Not carried out just now, and not refused: send the same command (same id) again.

    A service or the server restarting, a record others were changing at the same moment:
    wait ``retry_after_s`` seconds, then send it again with the same envelope id. The
    service answers an id it has carried out with the same reply, so the command takes
    effect once however often it is sent (a new id would be another command)."""

    type_name: ClassVar[str] = "CommandUnavailable"
    status: Literal["unavailable"] = "unavailable"
    command_id: str | None
    command_type: str
    # Plain words for a person; never an exception's name (those go to the service's log).
    reason: str = Field(min_length=1, max_length=500)
    retry_after_s: float = Field(default=1.0, gt=0, le=3600)


CommandReply = Annotated[
    CommandAccepted | CommandRejected | CommandUnavailable, Field(discriminator="status")
]


class DeadLetter(Message):
    """A message a service could not process, with the reason and the original.

    Dead letters keep the original bytes so nothing is lost, up to ``ORIGINAL_KEPT`` bytes
    (an event's whole original stays in the EVENTS stream; a command larger than that was
    refused for its size); the stream that holds them is readable only by the
    organisation's operators.
    """

    type_name: ClassVar[str] = "DeadLetter"
    # 1.1: original_size, original_truncated; 1.2: reason and original sealed at rest;
    # 1.3: original_sha256
    schema_version: ClassVar[str] = "1.3"
    ORIGINAL_KEPT: ClassVar[int] = 64 * 1024
    # A command refused as malformed was answered with each failing field: its sender has
    # what it sent, so only its first bytes are kept, with the size and hash of the whole.
    MALFORMED_KEPT: ClassVar[int] = 1024
    service: str
    # Up to 2,000 characters as written; sealed (``enc:v1:...``), as kept, up to 12,000.
    reason: Annotated[str, SENSITIVE] = Field(max_length=12_000)
    subject: str
    deliveries: int
    headers: dict[str, str]
    # UTF-8 text, or base64 prefixed "base64:" for other bytes: a command's, with whatever
    # personal data it held.
    original: Annotated[str, SENSITIVE]
    original_size: int | None = None  # bytes
    original_truncated: bool = False
    # SHA-256 (hex) of the whole original: a truncated one is still identified.
    original_sha256: str | None = None


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    """Each failing field, named by its path under ``prefix`` (``data.client.name``); an
    error about the document as a whole (not JSON at all) names ``prefix``, else ``body``."""
    return [
        FieldError(
            field=".".join([p for p in [prefix] if p] + [str(part) for part in e["loc"]])
            or prefix
            or "body",
            reason=e["msg"],
        )
        for e in error.errors()
    ]
