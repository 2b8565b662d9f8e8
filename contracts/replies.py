"""Replies to commands, and the dead letter a service writes for a message it cannot use."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from contracts.envelope import Message, Part


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


CommandReply = Annotated[CommandAccepted | CommandRejected, Field(discriminator="status")]


class DeadLetter(Message):
    """A message a service could not process, with the reason and the original.

    Dead letters keep the original bytes so nothing is lost; the stream that
    holds them is readable only by the organisation's operators.
    """

    type_name: ClassVar[str] = "DeadLetter"
    service: str
    reason: str
    subject: str
    deliveries: int
    headers: dict[str, str]
    original: str  # UTF-8 text, or base64 prefixed "base64:" for other bytes
