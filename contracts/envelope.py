"""The envelope every Alongside message travels in.

Attribute names follow CloudEvents 1.0 (structured JSON mode): ``id``,
``type``, ``source``, ``time``, ``specversion``, ``datacontenttype``, and the
extension attributes ``org``, ``schemaversion``, ``correlationid`` and
``causationid``. A command's ``id`` is its idempotency key; an event's ``id``
is also its ``Nats-Msg-Id``, so JetStream drops a republished duplicate.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from contracts.subjects import ID_PATTERN, ORG_PATTERN

# What one message may weigh: far above any real command or event, far below the server's
# 1 MB, so a runaway message is refused where it enters (and no record grows without bound).
MAX_COMMAND_BYTES = 64 * 1024
MAX_EVENT_BYTES = 256 * 1024

When = TypeVar("When", date, datetime)


def _in_our_era(value: When) -> When:
    # Far enough for any birth or booking; the year 9999 once overflowed date arithmetic.
    if not 1900 <= value.year <= 2199:
        raise ValueError("must be between the years 1900 and 2199")
    return value


def _written_out(value: object) -> object:
    # pydantic would read a number as seconds since 1970; the schema says a string.
    if isinstance(value, int | float):
        raise ValueError("must be written out as an ISO 8601 string, not a number")
    return value


_OUR_ERA = "^(19|20|21)[0-9]{2}-"  # the same bound, as the exported schemas state it

# The days and moments messages carry.
Day = Annotated[
    date,
    BeforeValidator(_written_out),
    AfterValidator(_in_our_era),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _OUR_ERA}),
]
Moment = Annotated[
    AwareDatetime,
    BeforeValidator(_written_out),
    AfterValidator(_in_our_era),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": _OUR_ERA}),
]

OrgId = Annotated[str, Field(pattern=ORG_PATTERN, description="Organisation token")]
EntityId = Annotated[
    str, Field(pattern=ID_PATTERN, description="Identifier (letters, digits, - and _)")
]
# Ids become KV keys (a command's reply is kept under <org>.<id>): letters, digits, - and _,
# in tokens joined by single dots.
TraceParent = Annotated[
    str,
    Field(
        pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="W3C trace context: version-traceid-parentid-flags",
    ),
]
MessageId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
]


class Part(BaseModel):
    """Base of every nested part of a payload: unknown fields are errors, values immutable."""

    # NaN and infinities are not JSON, and no decision can be made on them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Message(Part):
    """Base of every payload. ``type_name`` and ``schema_version`` tie it to the catalogue."""

    type_name: ClassVar[str]
    # MAJOR.MINOR; see contracts/VERSIONING.md.
    schema_version: ClassVar[str] = "1.0"


class Command(Message):
    """Imperative request answered by a CommandReply."""

    service: ClassVar[str]


class Event(Message):
    """Something that happened, past tense. Consumers ignore fields they do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)


DataT = TypeVar("DataT")


class Envelope(BaseModel, Generic[DataT]):
    # NaN and infinities are not JSON, and no decision can be made on them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    specversion: Literal["1.0"] = "1.0"
    id: MessageId
    type: str = Field(min_length=1, max_length=64)
    source: str = Field(min_length=1, max_length=128)
    org: OrgId
    time: Moment
    schemaversion: str = Field(pattern=r"^\d+\.\d+$")
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: MessageId | None = None
    causationid: MessageId | None = None
    # W3C trace context (the CloudEvents distributed-tracing extension): a command starts a
    # trace; every message it causes, directly or through other events, carries the same
    # trace id. Also sent as the NATS header of the same name.
    traceparent: TraceParent | None = None
    data: DataT


RawEnvelope = Envelope[dict[str, Any]]
# Held here: pydantic keeps parametrised classes only weakly, so after a full collection
# ``wrap`` would build the class again (seen: 50 of 50 lookups, about 1 ms each).
AnyEnvelope = Envelope[Any]


def unreadable_version(schemaversion: str, model: type[Message]) -> str | None:
    """Why a message of ``schemaversion`` cannot be read as ``model``, if it cannot: another
    major version means another shape (a newer minor only adds optional fields)."""
    if schemaversion.split(".")[0] != model.schema_version.split(".")[0]:
        return (
            f"{model.type_name} {schemaversion} is not readable here; this version reads "
            f"{model.schema_version.split('.')[0]}.x"
        )
    return None


def new_id() -> str:
    return uuid.uuid4().hex


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def trace_parent(message_id: str, cause: Envelope[Any] | None = None) -> str:
    """The ``traceparent`` of message ``message_id``: the cause's trace (a new one, named
    by the message id, when there is no cause or it carries none), and a span id of its
    own. Both derive from ids, so a message published again (an outbox finished after a
    crash, a retried command) carries the same context."""
    if cause is not None and cause.traceparent is not None:
        trace_id = cause.traceparent.split("-")[1]
    else:
        trace_id = _hex(f"trace:{cause.id if cause is not None else message_id}", 32)
    return f"00-{trace_id}-{_hex(f'span:{message_id}', 16)}-01"


def wrap(
    data: Message,
    *,
    org: str,
    source: str,
    time: datetime,
    id: str | None = None,
    cause: Envelope[Any] | None = None,
    traceparent: str | None = None,
) -> Envelope[Any]:
    """Put a payload in an envelope; the type and schema version come from its class, the
    correlation and causation from the message that caused it, if any. The trace context
    is ``traceparent`` when the sender traces (the span it sends from), else derived from
    the cause (``trace_parent``)."""
    message_id = id or new_id()
    return AnyEnvelope(
        id=message_id,
        type=data.type_name,
        source=source,
        org=org,
        time=time,
        schemaversion=data.schema_version,
        correlationid=(cause.correlationid or cause.id) if cause is not None else None,
        causationid=cause.id if cause is not None else None,
        traceparent=traceparent or trace_parent(message_id, cause),
        data=data,
    )
