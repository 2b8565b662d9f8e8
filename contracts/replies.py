"""Replies to commands, and the dead letter a service writes for a message it cannot use."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError

from contracts.envelope import Message, Part
from contracts.privacy import SENSITIVE
from contracts.subjects import ID_PATTERN, ORG_PATTERN


class FieldError(Part):
    """One failing field, as a dotted path into the message (``data.client.languages.0``)."""

    field: str
    reason: str
    # The field in plain words for a person, when its sender knows them (a rule's label for
    # ``rules.eligibility.caseload-full``: "Caseload full"); ``field`` stays for machines.
    label: str | None = None


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
            reason=plain_reason(e),
        )
        for e in error.errors()
    ]


# Plain words for what a field must hold, for the people who read refusals (on a page, or a
# developer reading problem details): never a regex, never pydantic's wording. Each reads
# after the field's name ("Email: must be an email address, like name@example.org").
_PATTERNS: dict[str, str] = {
    ID_PATTERN: "use only letters, digits, - and _ (a letter or digit first), at most 64 "
    "characters",
    ORG_PATTERN: "use only lower-case letters, digits and -, 2 to 32 characters",
    r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$": "use only letters, digits, - and _, in parts "
    "joined by single dots, at most 64 characters",
    r"^[a-z][a-z0-9_]{1,40}$": "use lower-case letters, digits and _ (a letter first), 2 to "
    "41 characters, like tenancy_dispute",
    r"^[a-z]{2,3}$": "must be a language code of 2 or 3 lower-case letters, like en or sm",
    r"^\+?[0-9 ()-]{6,20}$": "must be a phone number: digits, spaces, brackets and -, with +"
    " first if need be, 6 to 20 characters",
    r"^\d+\.\d+$": "must be MAJOR.MINOR, like 1.0",
    r"^\d{4}-\d{2}$": "must be a month, like 2026-12",
    # Times are parsed as times (``time_parsing``); this is their JSON Schema's pattern.
    r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$": "must be a time of day, "
    "like 09:30",
    r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$": "must be a W3C traceparent, like "
    "00-<32 hex digits>-<16 hex digits>-01",
    r"^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$": "must be the whole personal link as it was "
    "sent: copy it again from the message",
    r"^[a-z_]{1,40}$": "use lower-case letters and _, at most 40 characters, like view",
    r"^[0-9]{6}$": "must be the six digits of the code we sent",
    r"^https?://": "must be a web address starting with https:// (or http://)",
}
_DATE = "must be a date, like 2026-12-31"
_KINDS: dict[str, str] = {
    "missing": "required: fill it in",
    "extra_forbidden": "is not one this takes: leave it out",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a number",
    "bool_parsing": "must be yes or no",
    "bool_type": "must be yes or no",
    "string_type": "must be text",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "dict_type": "must be a group of fields",
    "model_type": "must be a group of fields",
    "model_attributes_type": "must be a group of fields",
    "date_parsing": _DATE,
    "date_type": _DATE,
    "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": _DATE,
    "datetime_parsing": "must be a date and time, like 2026-12-31T09:30:00+13:00",
    "datetime_type": "must be a date and time, like 2026-12-31T09:30:00+13:00",
    "datetime_from_date_parsing": "must be a date and time, like 2026-12-31T09:30:00+13:00",
    "timezone_aware": "must be a date and time with its offset, like 2026-12-31T09:30+13:00",
    "time_parsing": "must be a time of day, like 09:30",
    "time_type": "must be a time of day, like 09:30",
    "json_invalid": "is not JSON",
    "json_type": "is not JSON",
}


def plain_reason(error: Mapping[str, Any]) -> str:
    """What is wrong with one field, in plain words: ``error`` is one of pydantic's
    ``ValidationError.errors()``. A message a model wrote itself (a validator's) is kept,
    without pydantic's "Value error, " before it."""
    kind, ctx = str(error.get("type", "")), error.get("ctx") or {}
    if kind == "json_invalid" and ctx.get("error"):  # where and why: an operator reads it
        return f"{_KINDS[kind]} ({ctx['error']})"
    if kind in _KINDS:
        return _KINDS[kind]
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        if pattern in _PATTERNS:
            return _PATTERNS[pattern]
        # An email pattern, however its parts are spelled (forms and the console's own).
        return (
            "must be an email address, like name@example.org"
            if "@" in pattern
            else ("is not in the form this takes")
        )
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "required: fill it in" if n == 1 else f"at least {n} characters"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "needs at least one" if n == 1 else f"needs at least {n}"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')}"
    bound = {
        "greater_than_equal": ("ge", "must be {} or more"),
        "greater_than": ("gt", "must be more than {}"),
        "less_than_equal": ("le", "must be {} or less"),
        "less_than": ("lt", "must be less than {}"),
        "multiple_of": ("multiple_of", "must be a multiple of {}"),
    }.get(kind)
    if bound is not None:
        return bound[1].format(ctx.get(bound[0]))
    if kind in ("enum", "literal_error", "union_tag_invalid"):
        expected = str(ctx.get("expected") or ctx.get("expected_tags") or "")
        choices = re.findall(r"'([^']*)'", expected) or [expected]
        return "must be one of: " + ", ".join(choices)
    message = str(error.get("msg", ""))
    for said in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(said)
    return message
