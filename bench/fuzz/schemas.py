"""The exported contracts, read back: each message type's schema, and validators of them."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

from bench.fuzz.shared import Contract, Doc, Json
from contracts import catalogue
from contracts.rules import FACTS, EvaluateRules


def inline(schema: Json, defs: dict[str, Json], depth: int = 0) -> Json:
    """The schema with every local ``$ref`` replaced by what it points to."""
    if depth > 40:
        raise ValueError("recursive schema")
    if isinstance(schema, list):
        return [inline(item, defs, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = inline(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, depth + 1)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return {**target, **inline(rest, defs, depth + 1)}
    return {k: inline(v, defs, depth + 1) for k, v in schema.items() if k != "$defs"}


def load_contracts(directory: Path) -> list[Contract]:
    """Export the catalogue and read it back: the fuzz works from the published schemas."""
    catalogue.export(directory)
    contracts = []
    for name, model in {**catalogue.COMMANDS, **catalogue.EVENTS}.items():
        exported = json.loads((directory / "schemas" / f"{name}.json").read_text())
        whole = inline(exported, exported.get("$defs", {}))
        is_command = name in catalogue.COMMANDS
        service = catalogue.COMMANDS[name].service if is_command else ""
        kind: Literal["command", "event"] = "command" if is_command else "event"
        contracts.append(
            Contract(name, kind, service, model.schema_version, whole, whole["properties"]["data"])
        )
    rules = next(c for c in contracts if c.name == EvaluateRules.type_name)
    for fact_kind, facts in FACTS.items():  # EvaluateRules takes any facts: generate real ones
        facts_schema = facts.model_json_schema()
        data = {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "facts"],
            "properties": {
                "kind": {"const": fact_kind.value},
                "facts": inline(facts_schema, facts_schema.get("$defs", {})),
            },
        }
        contracts.append(
            Contract(
                rules.name,
                "command",
                rules.service,
                rules.schemaversion,
                rules.envelope,
                data,
                fact_kind.value,
            )
        )
    return contracts


def _date_time(value: object) -> bool:
    pattern = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
    if not isinstance(value, str):
        return True
    if not re.match(pattern, value):
        return False
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    return True


def _date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return bool(re.match(r"^\d{4}-\d{2}-\d{2}$", value)) and bool(date.fromisoformat(value))
    except ValueError:
        return False


def _time(value: object) -> bool:
    """RFC 3339 full-time, with the offset optional: pydantic exports naive times as
    ``time`` too, and accepts them."""
    pattern = r"^\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$"
    if not isinstance(value, str):
        return True
    try:
        parsed = datetime.fromisoformat(f"2000-01-01T{value.upper()}")
        return bool(re.match(pattern, value)) and bool(parsed)
    except ValueError:
        return False


FORMATS = FormatChecker()
FORMATS.checks("date-time")(_date_time)
FORMATS.checks("date")(_date)
FORMATS.checks("time")(_time)


class Validators:
    """Validators of exported schemas, made once each."""

    def __init__(self) -> None:
        self._made: dict[int, Draft202012Validator] = {}
        self._keep: list[Json] = []

    def valid(self, schema: Json, value: Json) -> bool:
        made = self._made.get(id(schema))
        if made is None:
            made = self._made[id(schema)] = Draft202012Validator(schema, format_checker=FORMATS)
            self._keep.append(schema)
        try:
            return bool(made.is_valid(value))
        except (RecursionError, ValueError):
            return False


VALIDATORS = Validators()


SHELLS: dict[str, Doc] = {}


def shell(contract: Contract) -> Doc:
    """The envelope schema with any type, schema version and payload: the envelope alone."""
    if contract.name not in SHELLS:
        properties = {
            **contract.envelope["properties"],
            "data": {},
            "type": {"type": "string"},
            "schemaversion": {"type": "string", "pattern": r"^\d+\.\d+$"},
        }
        SHELLS[contract.name] = {**contract.envelope, "properties": properties}
    return SHELLS[contract.name]
