"""Bad input at scale: malformed commands and events against the real services.

Starts a real nats-server (embedded, ``sync_interval: always``) in a temporary folder,
provisions it, runs each service in its own process (``alongside up <service>``) and
arranges one real journey (eligible supporters, a case whose match is active and whose
sessions go ahead, a group session), so that absurd values reach the services' decisions
and not only their validation. Then it sends ``--n`` messages (10,000 by default):

  - commands, on every command subject (every command of every service), by request/reply;
  - events, into the ``EVENTS`` stream on every event subject (the consumers of rules,
    matching and scheduling read ``alongside.*.evt.*``), each with a unique ``Nats-Msg-Id``.

What is sent, with a fixed seed:

  - schema-generated: payloads generated from the exported JSON Schemas
    (``catalogue.export``; hypothesis, with hypothesis-jsonschema for the leaves: 0.23.1
    cannot generate objects with this hypothesis, its ``from_object_schema`` calls a
    removed ``many.more()``) and then mutated, guided by the schema: a required field
    dropped, an unknown field added, a value of the wrong type, out of range or of the
    wrong format, null, a value drawn by hypothesis-jsonschema from ``{"not": schema}``;
    or the envelope mutated the same way; or left valid;
  - valid-looking but absurd: dates in year 1 and 9999, offsets of +-23:59, integers of
    2**63 and 10**30, 20,000-character strings with NUL and right-to-left marks, 500
    element lists, ids of the real records arranged first (absurd dates and time zones on
    the arranged case are sent first, one at a time, before the fuzz changes it);
  - hand-made: invalid UTF-8, not JSON, empty, JSON that is not an object, 100,000-deep
    nesting, 1 MB strings, the wrong organisation, an unknown one, an invalid organisation
    token on the subject or in the envelope, absurd envelope times, absurd time zones,
    lone surrogates, NaN and 400-digit numbers, an envelope type that is not the
    subject's, unknown envelope fields, duplicate ids with a different payload, strings
    just under and just over the size limits (64 KiB a command, 256 KiB an event).

What is measured:

  - ``fuzz_unanswered``: commands with no reply within 5 s (a timeout, or no responders);
    each reply must be a known reply, and each rejection must name a field and a reason;
    ``fuzz_handler_failures``: commands answered ``unavailable`` because their handler
    raised (the reason ``runtime.commands.NOT_CARRIED_OUT``; a busy record or state not yet
    readable is ``unavailable`` too, and is no failure); ``fuzz_accepted_schema_invalid``:
    commands accepted although their exported schema refuses them;
  - ``fuzz_crashes``: service processes that exited (each is restarted, so the run goes
    on); ``fuzz_hangs``: a service that stopped answering even its readiness probe for
    60 s (it is killed and restarted);
  - ``fuzz_events_unaccounted``: events that are *invalid for their exported schema*
    (the body is not UTF-8 JSON, or the document fails the JSON Schema of the event type
    its subject names, whose ``type`` is a constant, or the envelope's ``org`` is not the
    subject's, or the subject's organisation token is invalid) and yet are neither
    dead-lettered by any service (a ``DeadLetter`` in ``DEADLETTERS`` whose kept headers
    carry the event's ``Nats-Msg-Id``) nor legitimately ignored (no service handles the
    type named by the subject or by the envelope, and the envelope itself, ``data``
    aside, is valid and of the subject's organisation) nor dropped by the stream as a
    duplicate ``Nats-Msg-Id`` nor refused by the stream at publish (its size limit: the
    publisher is told) nor logged by a consumer as ``unroutable_event`` with its stream
    sequence (an invalid organisation token: no organisation to keep a dead letter
    under; counted as ``fuzz_events_logged_unroutable``). Split into
    ``..._model_rejects`` (the contract's own pydantic model rejects it too: the consumer
    should have dead-lettered it by its own rules, so it was lost) and ``..._lax`` (the
    model accepts what the schema refuses, e.g. a string "7" for an integer, a number
    for the envelope's ``time``, or an envelope ``type`` that is not the subject's: the
    consumers are laxer than the contract);
  - ``fuzz_events_missing_dead_letters``: (event, service) pairs where a service's
    consumer, by its own rules (envelope unreadable or of another organisation, or a
    payload its model rejects for a type it handles), should have dead-lettered an
    event and did not;
  - consumer health once the events have drained (``num_pending``, ``num_ack_pending``,
    ``num_redelivered`` of each durable consumer), and the server's max-deliveries
    advisories;
  - ``fuzz_still_serving``: afterwards a valid SubmitIntake is accepted, each service
    answers a valid command (EvaluateRules, RefuseService, ConfigureScheduling), and the
    new intake flows through rules to matching;
  - memory: each service's RSS (``VmRSS``) before the fuzz, after the commands and at the
    end; ``fuzz_rss_growth_mb_<service>`` is end minus start.

The details (every failure class with an example, the services' error log lines) are
printed to stderr and written to ``--report``. The last line of stdout is one JSON object.

    python -m bench.fuzz [--n 10000] [--report /tmp/alongside-fuzz-report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import nats
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from nats.aio.client import Client as Nats
from nats.js.api import DeliverPolicy, PubAck
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from alongside import sample
from alongside.client import AlongsideClient
from bench import master_key_env, register
from bench.intake import stop_all
from contracts import catalogue, subjects
from contracts.envelope import MAX_COMMAND_BYTES, MAX_EVENT_BYTES, Command, RawEnvelope
from contracts.intake import GiveConsent, Method, Stage
from contracts.matching import AcceptProposal, RefuseService
from contracts.records import CaseMatch, CaseRecord, CaseSchedule
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import FACTS, EvaluateRules, Kind, RulesEvaluated
from contracts.scheduling import ConfigureScheduling, CreateGroupSession, SchedulingPolicy
from runtime import bus, commands, topology
from runtime.clock import SYSTEM
from runtime.dispatch import Handlers
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings
from runtime.store import bound_store
from runtime.vault import Vault
from services.intake.handlers import handlers as intake_handlers
from services.matching.handlers import handlers as matching_handlers
from services.rules.handlers import handlers as rules_handlers
from services.scheduling.handlers import handlers as scheduling_handlers

SEED = 20261123
ORG = "fuzz-org"
OTHER_ORG = "fuzz-other"
UNKNOWN_ORG = "no-such-org"
BAD_SUBJECT_ORG = "X"  # one character: not an organisation token
SOURCE = "bench/fuzz"
REPLY_TIMEOUT_S = 5.0
COMMANDS_IN_FLIGHT = 16
EVENTS_IN_FLIGHT = 32
POOL = 30  # schema-valid payloads generated per message type
MAX_BODY = 1_040_000  # under the server's max_payload (1 MiB) with the headers
DRAIN_TIMEOUT_S = 180.0
HANG_AFTER_TIMEOUTS = 8
HANG_LIMIT_S = 60.0
HANDMADE_SHARE = 0.3
COMMAND_SHARE = 0.55

Json = Any
Doc = dict[str, Any]
HANDLERS: dict[str, Handlers[Any]] = {
    "intake": intake_handlers,
    "rules": rules_handlers,
    "matching": matching_handlers,
    "scheduling": scheduling_handlers,
}
CONSUMERS = {spec.service: spec for spec in topology.topology(Settings()).consumers}
HANDLED_EVENTS = {t for s in CONSUMERS for t in HANDLERS[s].events}


def say(text: str) -> None:
    print(f"fuzz: {text}", file=sys.stderr, flush=True)


# The exported contracts ------------------------------------------------------------------


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


@dataclass(frozen=True)
class Contract:
    """One message type as exported: its whole envelope schema and its payload's."""

    name: str
    kind: Literal["command", "event"]
    service: str  # commands: who answers; events: "" (every consumer reads every event)
    schemaversion: str
    envelope: Doc
    data: Doc
    variant: str = ""  # EvaluateRules: the kind of facts its payloads are generated from

    @property
    def label(self) -> str:
        return f"{self.name}:{self.variant}" if self.variant else self.name


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


# Generation from the schemas ---------------------------------------------------------------

LEAF_NOISE = ("title", "description", "default", "examples")


def _leaf(schema: Doc) -> st.SearchStrategy[Json]:
    leaf: dict[str, Any] = {k: v for k, v in schema.items() if k not in LEAF_NOISE}
    return from_schema(leaf)


ANY_JSON: st.SearchStrategy[Json] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20)
)


def strategy(schema: Json) -> st.SearchStrategy[Json]:
    """Values valid for ``schema``: objects and arrays composed here, leaves drawn by
    hypothesis-jsonschema."""
    if not isinstance(schema, dict) or not schema:
        return ANY_JSON
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return st.one_of([strategy(branch) for branch in schema[combinator]])
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return strategy({**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}})
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("type") == "object" or "properties" in schema:
        return _object(schema)
    if schema.get("type") == "array":
        limit = schema.get("maxItems", 4)
        return st.lists(
            strategy(schema.get("items", {})),
            min_size=schema.get("minItems", 0),
            max_size=min(limit, max(4, schema.get("minItems", 0))),
        )
    if "type" not in schema:
        return ANY_JSON
    return _leaf(schema)


def _object(schema: Doc) -> st.SearchStrategy[Json]:
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if not properties:
        values = strategy(extra) if isinstance(extra, dict) else ANY_JSON
        return st.dictionaries(st.text(max_size=12), values, max_size=4)
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {k: strategy(v) for k, v in properties.items() if k in required},
        optional={k: strategy(v) for k, v in properties.items() if k not in required},
    )


def examples(values: st.SearchStrategy[Json], count: int, salt: int) -> list[Json]:
    """``count`` values drawn deterministically (a seeded, generate-only @given loop)."""
    found: list[Json] = []

    @seed(SEED + salt)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(values)
    def collect(value: Json) -> None:
        found.append(value)

    with contextlib.suppress(HypothesisException):
        collect()
    return found


class NotPools:
    """Values hypothesis-jsonschema draws from ``{"not": leaf}``: invalid for that leaf."""

    SCALARS = ("string", "integer", "number", "boolean", "null")

    def __init__(self) -> None:
        self._pools: dict[str, list[Json]] = {}

    def draw(self, leaf: Doc, rng: random.Random) -> Json | None:
        key = json.dumps(leaf, sort_keys=True)
        if key not in self._pools:
            anti: dict[str, Any] = {
                "type": list(self.SCALARS),
                "not": {k: v for k, v in leaf.items() if k not in LEAF_NOISE},
            }
            try:
                self._pools[key] = examples(from_schema(anti), 8, len(self._pools))
            except Exception:  # a schema hypothesis-jsonschema cannot negate
                self._pools[key] = []
        pool = self._pools[key]
        return copy.deepcopy(rng.choice(pool)) if pool else None


NOT_POOLS = NotPools()


# Schema-guided mutation ----------------------------------------------------------------------

JsonPath = tuple[str | int, ...]


def branch_of(schema: Doc, value: Json) -> Doc:
    """The branch of an ``anyOf`` that ``value`` takes (the schema itself otherwise)."""
    for combinator in ("anyOf", "oneOf"):
        for option in schema.get(combinator, []):
            if VALIDATORS.valid(option, value):
                return branch_of(option, value)
    return schema


def nodes(schema: Json, value: Json, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Doc, Json]]:
    """Every node of ``value`` with the schema it should satisfy."""
    schema = branch_of(schema, value) if isinstance(schema, dict) else {}
    yield path, schema, value
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, item in value.items():
            yield from nodes(properties.get(key, {}), item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nodes(schema.get("items", {}), item, (*path, index))


def get(doc: Json, path: JsonPath) -> Json:
    for part in path:
        doc = doc[part]
    return doc


def put(doc: Json, path: JsonPath, value: Json) -> None:
    get(doc, path[:-1])[path[-1]] = value


WRONG_TYPED: tuple[Json, ...] = (None, True, 0, -1, 1.5, "text", "7", [], {}, ["x"], {"k": "v"})


def wrong_type(value: Json, rng: random.Random) -> Json:
    return rng.choice([w for w in WRONG_TYPED if type(w) is not type(value)])


def out_of_range(schema: Doc, value: Json, rng: random.Random) -> Json:
    """A value just outside what ``schema`` allows (of the wrong type if nothing bounds it)."""
    options: list[Json] = []
    if "minimum" in schema:
        options.append(schema["minimum"] - 1)
    if "maximum" in schema:
        options.append(schema["maximum"] + 1)
    if "maxLength" in schema:
        options.append("x" * (schema["maxLength"] + 1))
    if schema.get("minLength", 0) > 0:
        options.append("")
    if "pattern" in schema:
        options.extend(["Not A Token!", "", "a.b", "ünï", "x" * 300])
    if "enum" in schema or "const" in schema:
        options.append("zz_not_a_member")
    if "maxItems" in schema and isinstance(value, list):
        options.append((value or ["x"]) * (schema["maxItems"] + 1))
    if schema.get("minItems", 0) > 0:
        options.append([])
    fmt = schema.get("format")
    if fmt in ("date", "date-time", "time"):
        options.extend(
            [
                "2024-02-30",
                "2024-01-01T10:00:00",
                "2024-01-01T25:00:00Z",
                "10:00:00+25:00",
                "yesterday",
                "0000-00-00",
            ]
        )
    return rng.choice(options) if options else wrong_type(value, rng)


MUTATIONS = (
    "missing_required",
    "unknown_field",
    "wrong_type",
    "out_of_range",
    "null",
    "not_schema",
)


def mutate(schema: Doc, doc: Doc, under: JsonPath, rng: random.Random) -> tuple[Doc, str]:
    """One schema-guided mutation of a node at or under ``under``; returns the mutation."""
    doc = copy.deepcopy(doc)
    candidates = [n for n in nodes(schema, doc) if n[0][: len(under)] == under]
    path, node_schema, value = rng.choice(candidates)
    op = rng.choice(MUTATIONS)
    objects = [n for n in candidates if isinstance(n[2], dict)]
    if op == "missing_required":
        holders = [n for n in objects if set(n[1].get("required", [])) & set(n[2])]
        if holders:
            _, holder_schema, holder = rng.choice(holders)
            del holder[rng.choice(sorted(set(holder_schema["required"]) & set(holder)))]
            return doc, op
        op = "unknown_field"
    if op == "unknown_field" and objects:
        rng.choice(objects)[2]["zz_unknown"] = rng.choice(WRONG_TYPED)
        return doc, op
    if not path:  # the whole document: only its fields are replaced
        return mutate(schema, doc, (*under, "data"), rng) if under == () else (doc, "none")
    if op == "not_schema":
        drawn = NOT_POOLS.draw(node_schema, rng) if "type" in node_schema else None
        if drawn is not None or "type" in node_schema:
            put(doc, path, drawn)
            return doc, op
        op = "wrong_type"
    if op == "out_of_range":
        put(doc, path, out_of_range(node_schema, value, rng))
    elif op == "null":
        put(doc, path, None)
    else:
        op = "wrong_type"
        put(doc, path, wrong_type(value, rng))
    return doc, op


# Absurd values that the schemas still allow -------------------------------------------------

ABSURD_DATES = ("0001-01-01", "9999-12-31", "1970-01-01", "2000-02-29")
ABSURD_DATE_TIMES = (
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00+00:00",
    "2199-12-31T23:59:59-23:59",
)
ABSURD_TIMES = ("23:59:59.999999", "00:00:00", "12:00:00+14:00", "12:00:00-23:59")
ABSURD_INTS = (2**63, -(2**63), 2**53 + 1, 10**30, -1, 0)
ABSURD_NUMBERS = (1e308, -1e308, 5e-324, 0.0, -0.0)
WEIRD_TEXT = "\u202e\u0000\u200b\U0001f600 zalgo\u0301\u0301 "


@dataclass(frozen=True)
class Real:
    """Ids of the records arranged before the fuzz, so that absurd values reach decisions."""

    case_ids: tuple[str, ...] = ("fuzz-case",)
    supporter_ids: tuple[str, ...] = ("fuzz-s0",)
    session_ids: tuple[str, ...] = ("x",)
    group_ids: tuple[str, ...] = ("fuzz-group",)

    def ids_for(self, name: str) -> tuple[str, ...] | None:
        return {
            "case_id": self.case_ids,
            "supporter_id": self.supporter_ids,
            "facilitator_id": self.supporter_ids,
            "session_id": self.session_ids,
            "group_id": self.group_ids,
        }.get(name)


def absurd_leaf(schema: Doc, value: Json, name: str, real: Real, rng: random.Random) -> Json:
    """A value ``schema`` allows but nobody would send (or a real record's id)."""
    ids = real.ids_for(name)
    if ids is not None and isinstance(value, str):
        return rng.choice(ids)
    fmt = schema.get("format")
    choices: dict[str | None, tuple[Json, ...]] = {
        "date": ABSURD_DATES,
        "date-time": ABSURD_DATE_TIMES,
        "time": ABSURD_TIMES,
    }
    if fmt in choices:
        return rng.choice(choices[fmt])
    kind = schema.get("type")
    if kind == "integer":
        bounded = [b for b in (schema.get("minimum"), schema.get("maximum")) if b is not None]
        return rng.choice(bounded or ABSURD_INTS)
    if kind == "number":
        return rng.choice(ABSURD_NUMBERS)
    if kind == "string" and "pattern" not in schema and "enum" not in schema:
        limit = schema.get("maxLength", 20_000)
        return (WEIRD_TEXT * (limit // len(WEIRD_TEXT) + 1))[: max(limit, 1)]
    return value


def absurd(schema: Doc, doc: Doc, real: Real, rng: random.Random) -> Doc:
    """Replace about half of the payload's leaves (and lists) with absurd allowed values."""
    doc = copy.deepcopy(doc)
    for path, node_schema, value in list(nodes(schema, doc)):
        if len(path) < 2 or path[0] != "data" or rng.random() < 0.5:
            continue
        name = str(path[-1])
        if isinstance(value, list) and value and "maxItems" not in node_schema:
            put(doc, path, value * (500 // len(value)))
        elif not isinstance(value, dict | list):
            put(doc, path, absurd_leaf(node_schema, value, name, real, rng))
    return doc


# Probes: one message each, and what became of it ------------------------------------------------


@dataclass
class Probe:
    fuzz_id: str
    kind: Literal["command", "event"]
    name: str  # the message type its subject names
    service: str  # commands: who answers
    subject: str
    body: bytes
    recipe: str
    schema_valid: bool = False
    envelope_ok: bool = False  # events: the envelope (data aside) valid, of the subject's org
    envelope_type: str | None = None
    msg_id: str | None = None  # events: the Nats-Msg-Id (its fuzz id unless a duplicate)
    follows: Probe | None = None  # a duplicate id: sent after this one has been answered
    oracle: str = ""  # what the contract's own code says should happen
    expected_dead_letters: frozenset[str] = frozenset()
    # Results
    status: str = "unsent"
    errors: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""  # an ``unavailable`` reply's
    seconds: float = 0.0
    stream_seq: int | None = None
    duplicate: bool = False
    dead_letters: list[Letter] = field(default_factory=list)
    outcome: str = ""  # what became of it, in a word or two (for the report)

    def short(self, limit: int = 160) -> str:
        text = self.body[:limit].decode("utf-8", "backslashreplace")
        return text + (f"... ({len(self.body)} bytes)" if len(self.body) > limit else "")


def envelope_of(contract: Contract, data: Json, org: str = ORG, **fields: Json) -> Doc:
    return {
        "specversion": "1.0",
        "id": fields.pop("id", "pending"),
        "type": contract.name,
        "source": SOURCE,
        "org": org,
        "time": SYSTEM().isoformat(),
        "schemaversion": contract.schemaversion,
        "data": data,
        **fields,
    }


def encode(doc: Json, ascii_only: bool = True) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def subject_for(contract: Contract, org: str = ORG, name: str | None = None) -> str:
    name = name or contract.name
    if contract.kind == "command":
        return subjects.command(org, contract.service, name, subjects.OPERATOR)
    return f"{subjects.PREFIX}.{org}.evt.{name}"


async def judge(probe: Probe, contract: Contract) -> None:
    """Fill in what the exported schema and the contract's own code say of ``probe``."""
    org = probe.subject.split(".")[1]
    try:
        doc = json.loads(probe.body)
    except (ValueError, RecursionError):
        doc = None
    probe.schema_valid = (
        isinstance(doc, dict)
        and VALIDATORS.valid(contract.envelope, doc)
        and doc.get("org") == org
        and re.match(subjects.ORG_PATTERN, org) is not None
    )
    if isinstance(doc, dict):
        probe.envelope_ok = VALIDATORS.valid(shell(contract), doc) and doc.get("org") == org
        probe.envelope_type = doc.get("type") if isinstance(doc.get("type"), str) else None
    if probe.kind == "command":
        probe.oracle = await command_oracle(probe)
    else:
        verdicts = {s: consumer_oracle(probe, CONSUMERS[s], HANDLERS[s]) for s in CONSUMERS}
        probe.oracle = ",".join(f"{s}={v}" for s, v in sorted(verdicts.items()))
        probe.expected_dead_letters = frozenset(
            s for s, v in verdicts.items() if v == "dead_letter"
        )


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


class KeepingJetStream:
    """Stands in for JetStream when ``receive`` runs here: keeps what it would publish."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def publish(
        self, subject: str, payload: bytes = b"", stream: str = "", **_: Any
    ) -> PubAck:
        if stream == topology.DEADLETTER_STREAM:  # not the key its sealing makes
            self.subjects.append(subject)
        return PubAck(stream=stream, seq=len(self.subjects))

    async def get_last_msg(self, *_: Any, **__: Any) -> Any:
        raise NotFoundError  # no key yet: the day's dead letters key is made (kept above)


async def command_oracle(probe: Probe) -> str:
    """What the service's own first checks (``runtime/commands.receive``, run here on the
    same bytes) do with the probe: ``reject``, ``dead_letter`` (rejected and kept),
    ``handler`` (valid: its handler decides) or ``raises <error>``."""
    js = KeepingJetStream()
    try:
        received = await commands.receive(
            cast(Any, js),
            HANDLERS[probe.service],
            probe.subject,
            probe.body,
            {"Fuzz-Id": probe.fuzz_id},
            SYSTEM,
            bus.DeadLetters(Settings()),
        )
    except Exception as error:
        return f"raises {type(error).__name__}"
    if isinstance(received, CommandRejected):
        return "dead_letter" if js.subjects else "reject"
    return "handler"


def consumer_oracle(probe: Probe, spec: topology.ConsumerSpec, handlers: Handlers[Any]) -> str:
    """What the server and ``runtime/consumer.on_message`` do with the probe before its
    handler, replayed here: ``not_sent`` (outside the consumer's filter), ``unroutable`` (no
    organisation), ``dead_letter``, ``ignore`` or ``handler``."""
    if not any(subjects.matches(f, probe.subject) for f in spec.filter_subjects):
        return "not_sent"
    try:
        org = subjects.org_of(probe.subject)
    except subjects.SubjectError:
        return "unroutable"
    try:
        if len(probe.body) > MAX_EVENT_BYTES:
            return "dead_letter"
        envelope = RawEnvelope.model_validate_json(probe.body)
    except (ValueError, ValidationError):
        return "dead_letter"
    except Exception as error:
        return f"raises {type(error).__name__}"
    if envelope.org != org or envelope.type != subjects.last_token(probe.subject):
        return "dead_letter"
    route = handlers.events.get(envelope.type)
    if route is None:
        return "ignore"
    try:
        route.model.model_validate(envelope.data)
    except ValidationError:
        return "dead_letter"
    except Exception as error:
        return f"raises {type(error).__name__}"
    return "handler"


# Hand-made messages ------------------------------------------------------------------------------

HandMade = tuple[str, str, bytes]  # recipe, subject, body


def _big_string_doc(contract: Contract, base: Doc, where: str, size: int = MAX_BODY) -> bytes:
    """The envelope grown to about ``size`` bytes by one long string."""
    doc = copy.deepcopy(base)
    room = max(size - len(encode(doc)) - 20, 1)
    if where == "source":
        doc["source"] = "s" * room
    else:
        strings = [
            p
            for p, s, v in nodes(contract.envelope, doc)
            if len(p) > 1 and p[0] == "data" and isinstance(v, str)
        ]
        if strings:
            put(doc, strings[0], "m" * room)
        else:
            doc["data"]["zz_note"] = "m" * room
    return encode(doc)


def _deep(levels: int, kind: str) -> str:
    return "[" * levels + "]" * levels if kind == "list" else '{"a":' * levels + "1" + "}" * levels


def _with_raw_data(base: Doc, raw_data: str) -> bytes:
    doc = copy.deepcopy(base)
    doc["data"] = "@@DATA@@"
    return encode(doc).replace(b'"@@DATA@@"', raw_data.encode())


def _raw_number(base: Doc, contract: Contract, literal: str) -> bytes:
    """The payload with its first number (or a new field) written as ``literal``."""
    doc = copy.deepcopy(base)
    numbers = [
        p
        for p, _, v in nodes(contract.envelope, doc)
        if len(p) > 1 and p[0] == "data" and isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if numbers:
        put(doc, numbers[0], "@@NUMBER@@")
    else:
        doc["data"]["zz_number"] = "@@NUMBER@@"
    return encode(doc).replace(b'"@@NUMBER@@"', literal.encode())


def _surrogate(base: Doc, contract: Contract) -> bytes:
    doc = copy.deepcopy(base)
    strings = [
        p
        for p, s, v in nodes(contract.envelope, doc)
        if len(p) > 1
        and p[0] == "data"
        and isinstance(v, str)
        and "pattern" not in s
        and "enum" not in s
        and "format" not in s
        and "const" not in s
    ]
    target = strings[0] if strings else ("data", "zz_text")
    put(doc, target, "@@TEXT@@")
    return encode(doc).replace(b'"@@TEXT@@"', b'"lone \\ud800 surrogate"')


def handmade(contract: Contract, base: Doc, other: Doc | None) -> list[HandMade]:
    """The hand-made bad inputs for one subject; ``base`` is a valid envelope for it,
    ``other`` a valid envelope of another type."""
    subject = subject_for(contract)
    valid = encode(base)
    limit = MAX_COMMAND_BYTES if contract.kind == "command" else MAX_EVENT_BYTES
    made: list[HandMade] = [
        ("invalid_utf8_in_string", subject, valid.replace(SOURCE.encode(), b"bench/\xff\xfe\xc3(")),
        ("invalid_utf8_body", subject, b"\xff\xfe\xfd" * 40),
        ("not_json", subject, b"{this is not json"),
        ("empty_body", subject, b""),
        ("json_not_an_object", subject, b"[1, 2, 3]"),
        ("json_null", subject, b"null"),
        ("deep_nesting_lists_100k", subject, _with_raw_data(base, _deep(100_000, "list"))),
        ("deep_nesting_objects_10k", subject, _with_raw_data(base, _deep(10_000, "object"))),
        ("deep_nesting_lists_500", subject, _with_raw_data(base, _deep(500, "list"))),
        ("string_1mb_in_payload", subject, _big_string_doc(contract, base, "data")),
        ("string_1mb_in_envelope_source", subject, _big_string_doc(contract, base, "source")),
        ("string_under_size_limit", subject, _big_string_doc(contract, base, "data", limit - 64)),
        ("string_over_size_limit", subject, _big_string_doc(contract, base, "data", limit + 64)),
        ("wrong_org_in_envelope", subject, encode({**base, "org": OTHER_ORG})),
        ("unknown_org", subject_for(contract, UNKNOWN_ORG), encode({**base, "org": UNKNOWN_ORG})),
        (
            "invalid_org_on_subject",
            subject_for(contract, BAD_SUBJECT_ORG),
            encode({**base, "org": BAD_SUBJECT_ORG}),
        ),
        ("invalid_org_in_envelope", subject, encode({**base, "org": "Not An Org!"})),
        (
            "envelope_time_year_1_plus_23_59",
            subject,
            encode({**base, "time": "0001-01-01T00:00:00+23:59"}),
        ),
        (
            "envelope_time_year_9999_minus_23_59",
            subject,
            encode({**base, "time": "9999-12-31T23:59:59-23:59"}),
        ),
        ("envelope_time_feb_30", subject, encode({**base, "time": "2024-02-30T10:00:00Z"})),
        ("envelope_time_naive", subject, encode({**base, "time": "2024-01-01T10:00:00"})),
        (
            "envelope_time_offset_25h",
            subject,
            encode({**base, "time": "2024-01-01T10:00:00+25:00"}),
        ),
        ("envelope_time_number", subject, encode({**base, "time": 1e20})),
        ("envelope_unknown_field", subject, encode({**base, "zz_unknown": True})),
        ("envelope_without_data", subject, encode({k: v for k, v in base.items() if k != "data"})),
        ("envelope_data_null", subject, encode({**base, "data": None})),
        ("envelope_data_list", subject, encode({**base, "data": [base["data"]]})),
        ("schemaversion_99", subject, encode({**base, "schemaversion": "99.0"})),
        ("specversion_2", subject, encode({**base, "specversion": "2.0"})),
        ("id_with_empty_token", subject, encode({**base, "id": "a..b"})),
        ("id_65_chars", subject, encode({**base, "id": "i" * 65})),
        ("id_non_ascii", subject, encode({**base, "id": "ïd-ü"})),
        ("number_nan", subject, _raw_number(base, contract, "NaN")),
        ("number_infinity", subject, _raw_number(base, contract, "-Infinity")),
        ("number_1e999", subject, _raw_number(base, contract, "1e999")),
        ("number_400_digits", subject, _raw_number(base, contract, "9" * 400)),
        ("lone_surrogate_in_text", subject, _surrogate(base, contract)),
        (
            "raw_utf8_emoji_and_rtl",
            subject,
            encode({**base, "source": "bench/\U0001f600\u202e"}, ascii_only=False),
        ),
    ]
    if other is not None:
        made.append(("envelope_type_not_the_subjects", subject, encode(other)))
    return made


def daylight_saving_edges(zone_name: str, count: int = 4) -> list[str]:
    """02:30 local on the next days the zone's offset changes, as each offset reads it: a
    moment that happens twice, and one that never happens."""
    zone, now, edges = ZoneInfo(zone_name), SYSTEM(), []
    for days in range(1, 800):
        day = (now + timedelta(days=days)).astimezone(zone).date()
        night, morning = (datetime.combine(day, clock, zone) for clock in (dt_time(0), dt_time(4)))
        if night.utcoffset() != morning.utcoffset():
            at = datetime.combine(day, dt_time(2, 30), zone)
            edges += [at.isoformat(), at.replace(fold=1).isoformat()]
    return edges[:count]


def absurd_scheduling(real: Real) -> list[tuple[str, str, Doc]]:
    """Hand-made absurd dates and time zones on the arranged case: (recipe, command, data)."""
    case, session, supporter = real.case_ids[0], real.session_ids[-1], real.supporter_ids[0]
    made: list[tuple[str, str, Doc]] = []
    for moment in daylight_saving_edges(SchedulingPolicy().time_zone):
        made += [
            (
                "absurd_daylight_saving_live_record",
                "BookSession",
                {"case_id": case, "start": moment, "minutes": 60, "method": "phone"},
            ),
            (
                "absurd_daylight_saving_live_record",
                "RescheduleSession",
                {"case_id": case, "session_id": session, "start": moment},
            ),
        ]
    for moment in ABSURD_DATE_TIMES[:4]:
        made += [
            (
                "absurd_date_live_record",
                "BookSession",
                {"case_id": case, "start": moment, "minutes": 60, "method": "phone"},
            ),
            (
                "absurd_date_live_record",
                "RescheduleSession",
                {"case_id": case, "session_id": session, "start": moment},
            ),
            (
                "absurd_date_live_record",
                "ProposeMeetingTime",
                {"case_id": case, "by": "client", "start": moment},
            ),
            ("absurd_date_live_record", "GoAhead", {"case_id": case, "first_session": moment}),
            (
                "absurd_date_live_record",
                "CreateGroupSession",
                {
                    "group_id": f"g{len(made)}",
                    "facilitator_id": supporter,
                    "start": moment,
                    "minutes": 60,
                    "method": "video",
                    "capacity": 5,
                },
            ),
        ]
    made += [
        ("absurd_date_live_record", "ExtendService", {"case_id": case, "until": day})
        for day in ("9999-12-31", "0001-01-01", "2200-01-01")
    ]
    zones = (
        "Mars/Olympus_Mons",
        "",
        "../../../../etc/passwd",
        "UTC",
        "Etc/GMT+12",
        "Pacific/Kiritimati",
        "Europe/London\u0000",
        "America",
        "localtime",
        "Factory",
        "posixrules",
        "EST5EDT",
        "x" * 5000,
    )
    for zone in zones:
        made.append(("absurd_time_zone", "ConfigureScheduling", {"policy": {"time_zone": zone}}))
        soon = (SYSTEM() + timedelta(days=3)).isoformat()
        made.append(
            (
                "absurd_date_after_time_zone",
                "BookSession",
                {"case_id": case, "start": soon, "minutes": 60, "method": "phone"},
            )
        )
    made.append(("absurd_time_zone", "ConfigureScheduling", {"policy": {}}))
    return made


# Building the whole list -----------------------------------------------------------------------


@dataclass
class Plan:
    probes: list[Probe]
    contracts: dict[str, Contract]

    def count(self) -> int:
        return sum(1 + (p.follows is not None) for p in self.probes)


class Builder:
    def __init__(self, contracts: list[Contract], real: Real, rng: random.Random) -> None:
        self.contracts = contracts
        self.real = real
        self.rng = rng
        self.pools: dict[str, list[Doc]] = {}
        self.ids = 0

    def next_id(self) -> str:
        self.ids += 1
        return f"fz{self.ids:06d}"

    def pool(self, contract: Contract) -> list[Doc]:
        if contract.label not in self.pools:
            salt = sum(map(ord, contract.label))
            datas = examples(strategy(contract.data), POOL, salt) or [{}]
            self.pools[contract.label] = [envelope_of(contract, d) for d in datas]
        return self.pools[contract.label]

    def base(self, contract: Contract) -> Doc:
        """A valid envelope for the contract, preferably one the schema accepts."""
        pool = self.pool(contract)
        valid = [d for d in pool if VALIDATORS.valid(contract.envelope, d)] or pool
        return copy.deepcopy(self.rng.choice(valid))

    def probe(
        self,
        contract: Contract,
        recipe: str,
        body: bytes,
        subject: str | None = None,
        fuzz_id: str | None = None,
    ) -> Probe:
        probe = Probe(
            fuzz_id or self.next_id(),
            contract.kind,
            contract.name,
            contract.service,
            subject or subject_for(contract),
            body,
            recipe,
        )
        if probe.kind == "event":
            probe.msg_id = probe.fuzz_id
        return probe

    def from_doc(self, contract: Contract, recipe: str, doc: Doc) -> Probe:
        fuzz_id = self.next_id()
        if doc.get("id") == "pending":
            doc["id"] = fuzz_id
        return self.probe(contract, recipe, encode(doc), fuzz_id=fuzz_id)

    def generated(self, contract: Contract) -> Probe:
        """One schema-generated message: mutated payload or envelope, absurd, or valid."""
        roll = self.rng.random()
        doc = self.base(contract)
        if roll < 0.60:
            doc, op = mutate(contract.envelope, doc, ("data",), self.rng)
            return self.from_doc(contract, f"schema_mutant:{op}", doc)
        if roll < 0.72:
            doc, op = mutate(contract.envelope, doc, (), self.rng)
            return self.from_doc(contract, f"envelope_mutant:{op}", doc)
        if roll < 0.92:
            return self.from_doc(
                contract, "absurd_values", absurd(contract.envelope, doc, self.real, self.rng)
            )
        return self.from_doc(contract, "schema_valid", doc)

    def handmade(self, budget: int) -> list[Probe]:
        by_recipe: dict[str, list[Probe]] = defaultdict(list)
        for contract in self.contracts:
            if contract.variant:
                continue
            others = [
                c
                for c in self.contracts
                if c.kind == contract.kind
                and c.name != contract.name
                and not c.variant
                and (c.service == contract.service or c.name in HANDLED_EVENTS)
            ]
            other = self.base(self.rng.choice(others)) if others else None
            base = self.base(contract)
            for recipe, subject, body in handmade(contract, base, other):
                probe = self.probe(contract, f"handmade:{recipe}", b"", subject)
                probe.body = body.replace(b'"id": "pending"', f'"id": "{probe.fuzz_id}"'.encode())
                by_recipe[recipe].append(probe)
            by_recipe["duplicate_id"].append(self.duplicate(contract))
        by_recipe["duplicate_id_of_accepted"] = list(self.accepted_duplicates())
        named = {c.name: c for c in self.contracts if not c.variant}
        for recipe, name, data in absurd_scheduling(self.real):
            doc = envelope_of(named[name], data)
            by_recipe[recipe].append(self.from_doc(named[name], f"handmade:{recipe}", doc))
        return round_robin(by_recipe, budget, self.rng)

    def accepted_duplicates(self) -> Iterator[Probe]:
        """Commands that will be accepted, each followed by another payload under its id."""
        named = {c.name: c for c in self.contracts if not c.variant}
        rng = random.Random(SEED + 2)
        pairs: list[tuple[Command, Command]] = []
        for i in range(4):
            pairs.append((sample.intake(rng, f"dup-case-{i}"), sample.intake(rng, f"dup-case-{i}")))
            pairs.append((sample.supporter(rng, f"dup-s{i}"), sample.supporter(rng, f"dup-s{i}x")))
        pairs.append(
            (
                ConfigureScheduling(policy=SchedulingPolicy()),
                ConfigureScheduling(policy=SchedulingPolicy(funded_weeks=20)),
            )
        )
        for one, other in pairs:
            contract = named[one.type_name]
            first = self.from_doc(
                contract,
                "handmade:duplicate_id_of_accepted",
                envelope_of(contract, one.model_dump(mode="json")),
            )
            again = envelope_of(contract, other.model_dump(mode="json"), id=first.fuzz_id)
            first.follows = self.probe(
                contract, "handmade:duplicate_id_of_accepted_second", encode(again)
            )
            yield first

    def duplicate(self, contract: Contract) -> Probe:
        """A message, then another with the same id and a different payload."""
        first_doc, second_doc = self.base(contract), self.base(contract)
        mutated, _ = mutate(contract.envelope, second_doc, ("data",), self.rng)
        if mutated["data"] == first_doc["data"]:
            mutated["data"] = {**mutated["data"], "zz_different": 1}
        first = self.from_doc(contract, "handmade:duplicate_id", first_doc)
        mutated["id"] = first.fuzz_id
        second = self.probe(contract, "handmade:duplicate_id_second", encode(mutated))
        if contract.kind == "event" and self.rng.random() < 0.5:
            second.msg_id = first.msg_id  # the stream's dedupe should drop it
            second.recipe = "handmade:duplicate_msg_id_second"
        first.follows = second
        return first


def round_robin(groups: dict[str, list[Probe]], budget: int, rng: random.Random) -> list[Probe]:
    """Up to ``budget`` messages (a duplicate pair counts two), taking from each group in
    turn so that every kind of bad input is sent even in a short run."""
    queues = {k: deque(rng.sample(v, len(v))) for k, v in sorted(groups.items())}
    chosen: list[Probe] = []
    used = 0
    while used < budget and any(queues.values()):
        for queue in queues.values():
            if queue and used < budget:
                probe = queue.popleft()
                chosen.append(probe)
                used += 1 + (probe.follows is not None)
    return chosen


async def build(contracts: list[Contract], real: Real, n: int) -> Plan:
    rng = random.Random(SEED)
    builder = Builder(contracts, real, rng)
    started = time.perf_counter()
    for contract in contracts:
        builder.pool(contract)
    say(
        f"generated {sum(map(len, builder.pools.values()))} schema-valid payloads for "
        f"{len(contracts)} message types in {time.perf_counter() - started:.1f} s"
    )
    probes = builder.handmade(int(n * HANDMADE_SHARE))
    used = sum(1 + (p.follows is not None) for p in probes)
    commands = [c for c in contracts if c.kind == "command"]
    events = [c for c in contracts if c.kind == "event"]
    remaining = n - used
    command_count = int(remaining * COMMAND_SHARE)
    probes += [builder.generated(commands[i % len(commands)]) for i in range(command_count)]
    probes += [builder.generated(events[i % len(events)]) for i in range(remaining - command_count)]
    named = {c.name: c for c in contracts if not c.variant}
    for probe in probes:
        for one in (probe, probe.follows):
            if one is not None:
                await judge(one, named[one.name])
    rng.shuffle(probes)
    probes.sort(key=lambda p: not on_live_records(p))  # stable: those first, in their order
    say(
        f"built {sum(1 + (p.follows is not None) for p in probes)} messages in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return Plan(probes, named)


# The services, each in its own process --------------------------------------------------------


@dataclass
class Crash:
    service: str
    returncode: int | None
    what: str  # "exited" or "hung"
    recent: list[str]
    log_tail: list[str]


class Fleet:
    """The four services as ``alongside up <service>`` processes, restarted when one dies."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.log_files: dict[str, list[Path]] = defaultdict(list)
        self.crashes: list[Crash] = []
        self.recent: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=20))
        self.restarted: set[str] = set()

    def start(self, service: str) -> None:
        path = self.logs / f"{service}-{len(self.log_files[service])}.log"
        self.log_files[service].append(path)
        env = {
            **os.environ,
            "ALONGSIDE_NATS_URL": self.url,
            "ALONGSIDE_LOG_LEVEL": "WARNING",
            **master_key_env(self.logs),
        }
        with path.open("wb") as log:
            self.processes[service] = subprocess.Popen(
                [str(Path(sys.executable).parent / "alongside"), "up", service],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def rss_mb(self, service: str) -> float:
        status = Path(f"/proc/{self.processes[service].pid}/status")
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def tail(self, service: str, lines: int = 25) -> list[str]:
        text = self.log_files[service][-1].read_text(errors="replace")
        return text.splitlines()[-lines:]

    def check(self) -> list[str]:
        """Restart every service whose process exited; return their names."""
        died = []
        for service, process in list(self.processes.items()):
            if process.poll() is not None:
                self.crashes.append(
                    Crash(
                        service,
                        process.returncode,
                        "exited",
                        list(self.recent[service]),
                        self.tail(service),
                    )
                )
                say(f"{service} exited with {process.returncode}; restarting")
                self.restarted.add(service)
                self.start(service)
                died.append(service)
        return died

    def kill(self, service: str) -> None:
        process = self.processes[service]
        self.crashes.append(
            Crash(service, None, "hung", list(self.recent[service]), self.tail(service))
        )
        process.kill()
        process.wait()
        self.restarted.add(service)
        self.start(service)

    def stop(self) -> None:
        stop_all(self.processes.values(), timeout=15)


async def answering(nc: Nats, service: str, limit_s: float) -> bool:
    """The service answers its readiness probe (a command it does not have)."""
    probe = subjects.command("readiness-probe", service, "Ping", subjects.OPERATOR)
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        try:
            await nc.request(probe, b"", timeout=1.0)
            return True
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.1)
    return False


class Gate:
    """Stops sending to a service that stopped answering until it answers again (or is
    killed and restarted after ``HANG_LIMIT_S``)."""

    def __init__(self, nc: Nats, fleet: Fleet) -> None:
        self.nc = nc
        self.fleet = fleet
        self.open: dict[str, asyncio.Event] = {}
        self.timeouts: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()
        for service in catalogue_services():
            self.open[service] = asyncio.Event()
            self.open[service].set()

    async def wait(self, service: str) -> None:
        await self.open[service].wait()

    def answered(self, service: str) -> None:
        self.timeouts[service] = 0

    def timed_out(self, service: str) -> None:
        self.timeouts[service] += 1
        if self.timeouts[service] >= HANG_AFTER_TIMEOUTS and self.open[service].is_set():
            self.open[service].clear()
            task = asyncio.create_task(self._recover(service))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _recover(self, service: str) -> None:
        say(
            f"{service}: {HANG_AFTER_TIMEOUTS} requests in a row unanswered; checking that it "
            f"still answers (up to {HANG_LIMIT_S:.0f} s)"
        )
        if not await answering(self.nc, service, HANG_LIMIT_S):
            say(f"{service} is hung; killing and restarting it")
            self.fleet.kill(service)
            await answering(self.nc, service, 60.0)
        self.timeouts[service] = 0
        self.open[service].set()


def catalogue_services() -> list[str]:
    return sorted({c.service for c in catalogue.COMMANDS.values()})


async def watch(fleet: Fleet, stop: asyncio.Event) -> None:
    while not stop.is_set():
        fleet.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


# Arranging real records ------------------------------------------------------------------------


async def until(read: Callable[[], Awaitable[Any]], what: str, limit_s: float = 30.0) -> Any:
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        found = await read()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


async def accepted(client: AlongsideClient, command: Command) -> CommandAccepted:
    reply = await client.submit(ORG, command)
    if not isinstance(reply, CommandAccepted):
        raise RuntimeError(f"{command.type_name} refused: {reply.errors}")
    return reply


async def arrange(nc: Nats) -> tuple[Real, bool]:
    """Eligible supporters, a case whose match is active and whose sessions go ahead, and a
    group session: real records for absurd values to reach. Best effort."""
    from alongside.demo import scheduling_journey

    client = AlongsideClient(nc, source=SOURCE)
    rng = random.Random(SEED)
    today = SYSTEM().astimezone(ZoneInfo(SchedulingPolicy().time_zone)).date()
    supporter_ids = [f"fuzz-s{i}" for i in range(6)]
    story = sample.intake(rng, "fuzz-case")
    client_profile = story.client.model_copy(
        update={
            "languages": ["en"],
            "methods": list(Method),
            "gender_preference": None,
        }
    )
    for supporter_id in supporter_ids:
        registered = sample.supporter(rng, supporter_id)
        profile = registered.profile.model_copy(
            update={
                "languages": ["en"],
                "methods": list(Method),
                "region": client_profile.region,
                "caseload_cap": 5,
                "affiliations": [],
            }
        )
        await accepted(client, registered.model_copy(update={"profile": profile}))
        for evidence in sample.vetting(rng, supporter_id, today):
            await accepted(client, evidence)
    await accepted(client, story.model_copy(update={"client": client_profile}))
    js = nc.jetstream()
    vault = Vault.of(js, Settings())
    matches = await bound_store(js, topology.MATCHES_BUCKET, CaseMatch, vault)
    cases = await bound_store(js, topology.CASES_BUCKET, CaseRecord, vault)
    schedules = await bound_store(js, topology.SCHEDULES_BUCKET, CaseSchedule, vault)

    async def proposed() -> CaseMatch | None:
        stored, _ = await matches.load(ORG, "fuzz-case")
        return stored.record if stored and stored.record.proposals else None

    match = await until(proposed, "no proposals for fuzz-case")
    chosen = match.proposals[0].supporter_id
    await accepted(client, AcceptProposal(case_id="fuzz-case", supporter_id=chosen))

    async def named() -> bool:
        stored, _ = await cases.load(ORG, "fuzz-case")
        return stored is not None and stored.record.support_person is not None

    await until(named, "no support person named")
    for party in ("client", *[p.party_id for p in story.other_parties]):
        await accepted(
            client,
            GiveConsent(case_id="fuzz-case", party_id=party, stages=list(Stage), given_on=today),
        )

    async def scheduled() -> bool:
        stored, _ = await schedules.load(ORG, "fuzz-case")
        return stored is not None

    await until(scheduled, "no schedule for fuzz-case")
    journey = await scheduling_journey(client, nc, vault, ORG, "fuzz-case", SYSTEM)
    start = SYSTEM() + timedelta(days=10)
    await accepted(
        client,
        CreateGroupSession(
            group_id="fuzz-group",
            facilitator_id=chosen,
            start=start,
            minutes=60,
            method=Method.VIDEO,
            capacity=5,
        ),
    )
    sessions = tuple(s.session_id for s in journey.schedule.sessions)
    return Real(("fuzz-case",), (chosen, *supporter_ids), sessions, ("fuzz-group",)), True


# Sending -----------------------------------------------------------------------------------------


def on_live_records(probe: Probe) -> bool:
    return probe.recipe.startswith("handmade:absurd_")


def read_reply(probe: Probe, data: bytes) -> None:
    try:
        reply = json.loads(data)
        probe.status = str(reply["status"])
        if probe.status == "rejected":
            probe.errors = [
                (str(e.get("field", "")), str(e.get("reason", "")))
                for e in reply.get("errors") or []
            ]
        elif probe.status == "unavailable":
            probe.reason = str(reply.get("reason", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        probe.status = "bad_reply"


async def send_command(nc: Nats, probe: Probe, gate: Gate, fleet: Fleet) -> None:
    await gate.wait(probe.service)
    fleet.recent[probe.service].append(f"{probe.fuzz_id} {probe.recipe} {probe.subject}")
    started = time.perf_counter()
    try:
        response = await nc.request(
            probe.subject, probe.body, timeout=REPLY_TIMEOUT_S, headers={"Fuzz-Id": probe.fuzz_id}
        )
    except nats.errors.TimeoutError:
        probe.status = "no_reply"
        gate.timed_out(probe.service)
    except nats.errors.NoRespondersError:
        probe.status = "no_responders"
    except nats.errors.MaxPayloadError:
        probe.status = "too_big_to_send"
    else:
        gate.answered(probe.service)
        read_reply(probe, response.data)
    probe.seconds = time.perf_counter() - started


async def send_commands(nc: Nats, probes: list[Probe], gate: Gate, fleet: Fleet) -> None:
    slots = asyncio.Semaphore(COMMANDS_IN_FLIGHT)
    done = 0

    async def one(probe: Probe) -> None:
        nonlocal done
        async with slots:
            await send_command(nc, probe, gate, fleet)
            if probe.follows is not None:
                await send_command(nc, probe.follows, gate, fleet)
        done += 1
        if done % 500 == 0:
            say(f"commands: {done} of {len(probes)} sent")

    await asyncio.gather(*(one(p) for p in probes))


async def publish_event(nc: Nats, probe: Probe) -> None:
    js = nc.jetstream()
    headers = {"Nats-Msg-Id": probe.msg_id or probe.fuzz_id, "Fuzz-Id": probe.fuzz_id}
    try:
        ack = await js.publish(probe.subject, probe.body, timeout=10.0, headers=headers)
    except nats.errors.MaxPayloadError:
        probe.status = "refused: over the server's max_payload"
    except JetStreamError as error:
        # The stream refuses what its limits do not allow: the publisher is told.
        description = str(getattr(error, "description", "") or error)
        refused = "exceeds maximum" in description
        probe.status = f"{'refused' if refused else 'publish_failed'}: {description[:80]}"
    except nats.errors.TimeoutError:
        probe.status = "publish_failed: timeout"
    else:
        probe.status = "published"
        probe.stream_seq = ack.seq
        probe.duplicate = bool(ack.duplicate)


async def send_events(nc: Nats, probes: list[Probe]) -> None:
    slots = asyncio.Semaphore(EVENTS_IN_FLIGHT)
    done = 0

    async def one(probe: Probe) -> None:
        nonlocal done
        async with slots:
            await publish_event(nc, probe)
            if probe.follows is not None:
                await publish_event(nc, probe.follows)
        done += 1
        if done % 500 == 0:
            say(f"events: {done} of {len(probes)} published")

    await asyncio.gather(*(one(p) for p in probes))


# Afterwards: consumers, dead letters, advisories ------------------------------------------------


async def consumer_state(nc: Nats) -> dict[str, dict[str, int]]:
    js = nc.jetstream()
    states = {}
    for service, spec in CONSUMERS.items():
        info = await js.consumer_info(spec.stream, spec.durable)
        states[service] = {
            "num_pending": info.num_pending or 0,
            "num_ack_pending": info.num_ack_pending or 0,
            "num_redelivered": info.num_redelivered or 0,
        }
    return states


async def drain(nc: Nats) -> tuple[bool, dict[str, dict[str, int]], float]:
    """Wait until every durable consumer has nothing pending (twice in a row)."""
    started = time.perf_counter()
    calm = 0
    states = await consumer_state(nc)
    while time.perf_counter() - started < DRAIN_TIMEOUT_S:
        states = await consumer_state(nc)
        busy = sum(s["num_pending"] + s["num_ack_pending"] for s in states.values())
        calm = calm + 1 if busy == 0 else 0
        if calm >= 3:
            return True, states, time.perf_counter() - started
        await asyncio.sleep(1.0)
    return False, states, time.perf_counter() - started


@dataclass
class Letter:
    service: str
    reason: str
    fuzz_id: str | None
    msg_id: str | None
    subject: str


async def dead_letters(nc: Nats) -> list[Letter]:
    """Every dead letter in the stream (the fuzz's server holds nothing else)."""
    js = nc.jetstream()
    info = await js.stream_info(topology.DEADLETTER_STREAM)
    total = info.state.messages
    letters: list[Letter] = []
    if not total:
        return letters
    sealer = bus.DeadLetters(Settings()).sealer(js)
    sub = await js.subscribe(
        subjects.dead_letters("*"), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while len(letters) < total:
            try:
                msg = await sub.next_msg(timeout=5.0)
            except nats.errors.TimeoutError:
                break
            kept = RawEnvelope.model_validate_json(msg.data)
            data = await bus.read_dead_letter(sealer, kept)
            letters.append(
                Letter(
                    data.service,
                    data.reason,
                    data.headers.get("Fuzz-Id"),
                    data.headers.get("Nats-Msg-Id"),
                    data.subject,
                )
            )
    finally:
        await sub.unsubscribe()
    return letters


class Advisories:
    """The server's consumer advisories: messages that ran out of deliveries, or were
    terminated, by stream sequence."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.exhausted: dict[int, set[str]] = defaultdict(set)
        self.sub: Any = None

    async def start(self, nc: Nats) -> None:
        async def seen(msg: Any) -> None:
            kind = msg.subject.split(".")[4]
            self.kinds[kind] += 1
            if kind in ("MAX_DELIVERIES", "MSG_TERMINATED"):
                advisory = json.loads(msg.data)
                self.exhausted[int(advisory["stream_seq"])].add(str(advisory["consumer"]))

        self.sub = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.>", cb=seen)


# Still serving --------------------------------------------------------------------------------


async def still_serving(nc: Nats) -> dict[str, bool]:
    """A valid command to each service, answered as it should be; the intake flows on."""
    client = AlongsideClient(nc, source=SOURCE)
    rng = random.Random(SEED + 1)
    results: dict[str, bool] = {}

    async def ask(what: str, call: Callable[[], Awaitable[Any]], ok: type) -> None:
        try:
            reply = await call()
            results[what] = isinstance(reply, ok)
            if not results[what]:
                say(f"still serving? {what}: {reply}")
        except Exception as error:
            say(f"still serving? {what}: {type(error).__name__}: {error}")
            results[what] = False

    policy = ConfigureScheduling(policy=SchedulingPolicy())
    await ask("scheduling", lambda: client.submit(ORG, policy), CommandAccepted)
    await ask(
        "intake", lambda: client.submit(ORG, sample.intake(rng, "after-fuzz")), CommandAccepted
    )
    facts = {
        "case_id": "after-fuzz",
        "stage": "entry",
        "support_person_named": False,
        "parties": [],
        "missing_parties": [],
        "withdrawn_parties": [],
    }
    evaluate = EvaluateRules(kind=Kind.CONSENT, facts=facts)
    await ask("rules", lambda: client.request(ORG, evaluate), RulesEvaluated)
    js = nc.jetstream()
    matches = await bound_store(js, topology.MATCHES_BUCKET, CaseMatch, Vault.of(js, Settings()))

    async def offered() -> bool:
        stored, _ = await matches.load(ORG, "after-fuzz")
        return stored is not None and stored.outbox is None

    try:
        await until(offered, "after-fuzz was never offered", 60.0)
        results["events_flow_intake_rules_matching"] = True
    except TimeoutError:
        results["events_flow_intake_rules_matching"] = False
    refuse = RefuseService(case_id="after-fuzz")
    await ask("matching", lambda: client.submit(ORG, refuse), CommandAccepted)
    return results


# Findings -------------------------------------------------------------------------------------


@dataclass
class Findings:
    """Failure classes: (what went wrong, how the message was made) -> examples."""

    classes: dict[tuple[str, str], list[Probe]] = field(default_factory=lambda: defaultdict(list))

    def add(self, failure: str, probe: Probe) -> None:
        self.classes[(failure, probe.recipe)].append(probe)

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for (failure, recipe), probes in sorted(self.classes.items(), key=lambda i: -len(i[1])):
            example = probes[0]
            rows.append(
                {
                    "failure": failure,
                    "recipe": recipe,
                    "count": len(probes),
                    "types": sorted({p.name for p in probes})[:12],
                    "example": {
                        "subject": example.subject,
                        "body": example.short(300),
                        "oracle": example.oracle,
                        "status": example.status,
                        "errors": example.errors[:3],
                        "dead_letters": [
                            f"{d.service}: {d.reason[:200]}" for d in example.dead_letters[:3]
                        ],
                    },
                }
            )
        return rows


def letters_by_probe(letters: list[Letter]) -> dict[str, list[Letter]]:
    """Dead letters by the fuzz id their kept headers carry (else their Nats-Msg-Id)."""
    found: dict[str, list[Letter]] = defaultdict(list)
    for letter in letters:
        key = letter.fuzz_id or letter.msg_id
        if key:
            found[key].append(letter)
    return found


def every(probes: list[Probe]) -> Iterator[Probe]:
    for probe in probes:
        yield probe
        if probe.follows is not None:
            yield probe.follows


# What a command whose handler raised is answered with (``CommandUnavailable.reason``).
HANDLER_FAILED = commands.NOT_CARRIED_OUT
ANSWERED = ("accepted", "evaluated", "assigned")


def judge_commands(
    probes: list[Probe], letters: list[Letter], findings: Findings
) -> dict[str, int]:
    kept = letters_by_probe(letters)
    counts: Counter[str] = Counter()
    for probe in every(probes):
        probe.dead_letters = kept.get(probe.fuzz_id, [])
        counts[probe.status] += 1
        first = f" {probe.errors[0][0]}" if probe.errors else ""
        probe.outcome = f"{probe.status}{first}" + (" +dead-lettered" if probe.dead_letters else "")
        failure = command_failure(probe)
        if failure is not None:
            counts[failure[0]] += 1
            findings.add(failure[1], probe)
        if probe.oracle == "dead_letter" and not probe.dead_letters:
            counts["dead_letters_missing"] += 1
            findings.add("malformed command envelope not dead-lettered", probe)
    for probe in probes:
        second = probe.follows
        if second is not None and probe.status == "accepted" and second.status == "accepted":
            counts["duplicate_id_violations"] += 1
            findings.add("duplicate id with another payload accepted", second)
    return dict(counts)


def command_failure(probe: Probe) -> tuple[str, str] | None:
    """(counter, failure class) of a command that was not answered as it should be."""
    if probe.status in ("no_reply", "no_responders", "unsent"):
        return "unanswered", f"command unanswered ({probe.status})"
    if probe.status == "bad_reply":
        return "bad_reply", "command answered with an unknown reply"
    if probe.status == "rejected" and not all(f and r for f, r in probe.errors):
        return "rejected_without_field_or_reason", "rejection without a field or reason"
    if probe.status == "unavailable" and probe.reason == HANDLER_FAILED:
        return "handler_failed", "handler raised; answered unavailable"
    if probe.status == "unavailable" and not probe.reason:
        return "bad_reply", "command answered unavailable without a reason"
    if probe.status in ANSWERED and not probe.schema_valid:
        return "accepted_schema_invalid", "accepted although invalid for its exported schema"
    return None


def legitimately_ignored(probe: Probe) -> bool:
    named = {probe.name, probe.envelope_type} - {None}
    return probe.envelope_ok and not named & HANDLED_EVENTS


def reason_kind(reason: str) -> str:
    """A dead letter's reason without its particulars: ``failed 5 times; last: KeyError``."""
    failed = re.match(r"^(failed \d+ times; last: [\w.]+)", reason)
    return failed.group(1) if failed else reason.split(":")[0][:60]


def judge_events(
    probes: list[Probe],
    letters: list[Letter],
    advisories: Advisories,
    logged: set[int],
    findings: Findings,
) -> dict[str, int]:
    kept = letters_by_probe(letters)
    counts: Counter[str] = Counter()
    for probe in every(probes):
        probe.dead_letters = kept.get(probe.fuzz_id, [])
        if probe.status != "published":
            refused = probe.status.startswith("refused")
            probe.outcome = "refused_at_publish" if refused else "publish_failed"
            counts[probe.outcome] += 1
            if not refused:
                findings.add(f"event not published ({probe.status})", probe)
            continue
        probe.outcome = account(probe, logged)
        counts[probe.outcome] += 1
        for key, failure in event_failures(probe, advisories, logged):
            counts[key] += 1
            findings.add(failure, probe)
    return dict(counts)


def account(probe: Probe, logged: set[int]) -> str:
    """How a published event is accounted for (see the module docstring)."""
    if probe.dead_letters:
        return "dead_lettered"
    if probe.stream_seq in logged:
        return "logged_unroutable"
    if probe.duplicate:
        return "deduplicated"
    if legitimately_ignored(probe):
        return "ignored"
    if probe.schema_valid:
        return "valid_handled"
    return "unaccounted_lax" if model_accepts(probe) else "unaccounted_model_rejects"


def model_accepts(probe: Probe) -> bool:
    """Every consumer's own checks let the event through (to its handler, or ignored)."""
    return not any(word in probe.oracle for word in ("dead_letter", "unroutable", "raises"))


def event_failures(probe: Probe, advisories: Advisories, logged: set[int]) -> list[tuple[str, str]]:
    failures = []
    by = {letter.service for letter in probe.dead_letters}
    missing = probe.expected_dead_letters - by
    if missing and not probe.duplicate:
        failures.append(
            ("missing_dead_letters", f"not dead-lettered by {','.join(sorted(missing))}")
        )
    if probe.stream_seq in advisories.exhausted and not by:
        failures.append(("exhausted_without_dead_letter", "ran out of deliveries, no dead letter"))
    if account(probe, logged).startswith("unaccounted"):
        lax = " (its pydantic model accepts it)" if model_accepts(probe) else ""
        failures.append(
            ("unaccounted", f"schema-invalid event neither dead-lettered nor ignored{lax}")
        )
    if probe.stream_seq in logged:
        failures.append(("unroutable", "logged as unroutable, kept in EVENTS only"))
    if probe.schema_valid and by:
        kinds = sorted({reason_kind(letter.reason) for letter in probe.dead_letters})
        failures.append(
            ("valid_dead_lettered", f"schema-valid event dead-lettered: {'; '.join(kinds)}")
        )
    return failures


LOG_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*)$")


def unroutable(fleet: Fleet) -> set[int]:
    """Stream sequences of the events a consumer logged as unroutable (no organisation)."""
    found = set()
    for paths in fleet.log_files.values():
        for path in paths:
            for line in path.read_text(errors="replace").splitlines():
                if '"unroutable_event"' in line:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        found.add(int(json.loads(line)["stream_sequence"]))
    return found


LOG_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
OUR_CODE = ("/runtime/", "/services/", "/contracts/", "/alongside/")


def log_errors(fleet: Fleet) -> dict[str, list[tuple[str, int]]]:
    """Each service's error-level log lines and exceptions (with the deepest frame of our
    code in their traceback), counted by kind."""
    found: dict[str, list[tuple[str, int]]] = {}
    for service, paths in fleet.log_files.items():
        kinds: Counter[str] = Counter()
        for path in paths:
            frames: list[str] = []
            for line in path.read_text(errors="replace").splitlines():
                frame = LOG_FRAME.search(line)
                if frame and any(part in frame.group(1) for part in OUR_CODE):
                    where = frame.group(1).split("/")[-2:]
                    frames.append(f"{'/'.join(where)}:{frame.group(3)}:{frame.group(2)}")
                kind = _log_kind(line)
                if kind:
                    at = f" at {frames[-1]}" if frames and kind.startswith("exception") else ""
                    kinds[kind + at] += 1
                    frames = [] if kind.startswith("exception") else frames
        found[service] = kinds.most_common(30)
    return found


def _log_kind(line: str) -> str | None:
    try:
        entry = json.loads(line)
    except ValueError:
        match = LOG_EXCEPTION.match(line.strip())
        return f"exception: {match.group(1)[:200]}" if match else None
    if not isinstance(entry, dict) or entry.get("level") not in ("error", "critical"):
        return None
    detail = entry.get("error") or entry.get("detail") or entry.get("reason") or ""
    return f"{entry.get('level')}: {entry.get('event')} {str(detail)[:160]}".strip()


# The run ----------------------------------------------------------------------------------------


def rss(fleet: Fleet) -> dict[str, float]:
    return {s: round(fleet.rss_mb(s), 1) for s in catalogue_services()}


async def fuzz(n: int, state: Path, report: Path) -> dict[str, Any]:
    started = time.perf_counter()
    contracts = load_contracts(state / "contracts")
    with EmbeddedNats(state / "nats") as server:
        nc = await bus.connect(server.url, "bench-fuzz")
        await topology.provision(nc.jetstream(), Settings())
        await register(nc.jetstream(), ORG, OTHER_ORG)  # UNKNOWN_ORG stays unregistered
        fleet = Fleet(server.url, state)
        for service in catalogue_services():
            fleet.start(service)
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(fleet, stop))
        try:
            return await _run(nc, fleet, contracts, n, started, report)
        finally:
            stop.set()
            await watcher
            fleet.stop()
            await nc.close()


async def _run(
    nc: Nats, fleet: Fleet, contracts: list[Contract], n: int, started: float, report: Path
) -> dict[str, Any]:
    for service in catalogue_services():
        if not await answering(nc, service, 60.0):
            raise RuntimeError(f"{service} did not start")
    say("services answering; arranging real records")
    try:
        real, arranged = await arrange(nc)
    except Exception as error:
        say(f"arranging failed ({type(error).__name__}: {error}); fuzzing without them")
        real, arranged = Real(), False
    plan = await build(contracts, real, n)
    gate = Gate(nc, fleet)
    advisories = Advisories()
    await advisories.start(nc)
    rss_start = rss(fleet)
    command_probes = [p for p in plan.probes if p.kind == "command"]
    event_probes = [p for p in plan.probes if p.kind == "event"]
    phase = time.perf_counter()
    # Absurd dates and zones on the arranged case first, in order, before the fuzz ends it.
    for probe in (p for p in command_probes if on_live_records(p)):
        await send_command(nc, probe, gate, fleet)
    await send_commands(nc, [p for p in command_probes if not on_live_records(p)], gate, fleet)
    commands_s = time.perf_counter() - phase
    say(f"{len(command_probes)} command probes done in {commands_s:.1f} s")
    rss_mid = rss(fleet)
    phase = time.perf_counter()
    await send_events(nc, event_probes)
    published_s = time.perf_counter() - phase
    say(f"{len(event_probes)} event probes published in {published_s:.1f} s; draining")
    drained, consumers, drain_s = await drain(nc)
    say(f"consumers drained: {drained} after {drain_s:.1f} s: {consumers}")
    letters = await dead_letters(nc)
    serving = await still_serving(nc)
    await asyncio.sleep(1.0)
    fleet.check()
    rss_end = rss(fleet)
    findings = Findings()
    command_counts = judge_commands(command_probes, letters, findings)
    event_counts = judge_events(event_probes, letters, advisories, unroutable(fleet), findings)
    errors = log_errors(fleet)
    c, e = Counter(command_counts), Counter(event_counts)
    unanswered = c["no_reply"] + c["no_responders"] + c["unsent"]
    figures = {
        "n": n,
        "seed": SEED,
        "fuzz_messages": plan.count(),
        "fuzz_schema_invalid_messages": sum(not p.schema_valid for p in every(plan.probes)),
        "fuzz_commands": sum(1 for _ in every(command_probes)),
        "fuzz_events": sum(1 for _ in every(event_probes)),
        "fuzz_unanswered": unanswered,
        "fuzz_crashes": sum(crash.what == "exited" for crash in fleet.crashes),
        "fuzz_hangs": sum(crash.what == "hung" for crash in fleet.crashes),
        "fuzz_events_unaccounted": e["unaccounted_lax"] + e["unaccounted_model_rejects"],
        "fuzz_events_unaccounted_model_rejects": e["unaccounted_model_rejects"],
        "fuzz_events_unaccounted_lax": e["unaccounted_lax"],
        "fuzz_events_missing_dead_letters": e["missing_dead_letters"],
        "fuzz_events_exhausted_without_dead_letter": e["exhausted_without_dead_letter"],
        "fuzz_events_dead_lettered": e["dead_lettered"],
        "fuzz_events_ignored": e["ignored"],
        "fuzz_events_logged_unroutable": e["logged_unroutable"],
        "fuzz_events_handled_valid": e["valid_handled"],
        "fuzz_events_deduplicated": e["deduplicated"],
        "fuzz_events_refused_at_publish": e["refused_at_publish"],
        "fuzz_events_publish_failed": e["publish_failed"],
        "fuzz_events_valid_dead_lettered": e["valid_dead_lettered"],
        "fuzz_still_serving": all(serving.values()),
        "still_serving": serving,
        "fuzz_accepted": sum(c[k] for k in ANSWERED),
        "fuzz_rejected": c["rejected"],
        "fuzz_handler_failures": c["handler_failed"],
        "fuzz_bad_replies": c["bad_reply"],
        "fuzz_rejected_without_field_or_reason": c["rejected_without_field_or_reason"],
        "fuzz_accepted_schema_invalid": c["accepted_schema_invalid"],
        "fuzz_duplicate_id_violations": c["duplicate_id_violations"],
        "fuzz_command_dead_letters_missing": c["dead_letters_missing"],
        "fuzz_dead_letters": len(letters),
        "fuzz_dead_letters_without_reason": sum(not letter.reason for letter in letters),
        "consumers_drained": drained,
        "consumers": consumers,
        "advisories": dict(advisories.kinds),
        "arranged_real_records": arranged,
        "restarted_services": sorted(fleet.restarted),
        **{f"fuzz_rss_mb_start_{s}": v for s, v in rss_start.items()},
        **{f"fuzz_rss_growth_mb_{s}": round(rss_end[s] - rss_start[s], 1) for s in rss_start},
        **{
            f"fuzz_rss_growth_events_phase_mb_{s}": round(rss_end[s] - rss_mid[s], 1)
            for s in rss_start
        },
        "commands_phase_s": round(commands_s, 1),
        "duration_s": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    write_report(report, figures, findings, fleet, errors, plan)
    return figures


def write_report(
    report: Path,
    figures: dict[str, Any],
    findings: Findings,
    fleet: Fleet,
    errors: dict[str, list[tuple[str, int]]],
    plan: Plan,
) -> None:
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for probe in every(plan.probes):
        outcomes[f"{probe.kind} {probe.recipe}"][probe.outcome] += 1
    live = [
        {"subject": p.subject, "body": p.short(400), "outcome": p.outcome, "errors": p.errors[:2]}
        for p in every(plan.probes)
        if on_live_records(p)
    ]
    pairs = Counter(
        f"{p.outcome} -> {p.follows.outcome}"
        for p in plan.probes
        if p.follows is not None and p.kind == "command"
    )
    logs = report.with_name(report.stem + "-logs")
    logs.mkdir(parents=True, exist_ok=True)
    for paths in fleet.log_files.values():
        for path in paths:
            shutil.copy(path, logs / path.name)
    details: dict[str, Any] = {
        "figures": figures,
        "duplicate_id_pairs": dict(pairs.most_common()),
        "service_logs": str(logs),
        "failure_classes": findings.summary(),
        "crashes": [c.__dict__ for c in fleet.crashes],
        "service_log_errors": errors,
        "outcomes_by_recipe": {k: dict(v.most_common()) for k, v in sorted(outcomes.items())},
        "absurd_dates_and_zones_on_live_records": live,
    }
    report.write_text(json.dumps(details, indent=2, default=str))
    say(f"report written to {report}")
    for failure, rows in grouped(details["failure_classes"]).items():
        recipes = ", ".join(f"{r['recipe']} {r['count']}" for r in rows[:4])
        say(f"  [{sum(r['count'] for r in rows):>5}] {failure} <- {recipes}")
        example = rows[0]["example"]
        say(f"          e.g. {example['subject']}: {example['body'][:160]}")
        for said in example["dead_letters"][:1] + [": ".join(e) for e in example["errors"][:1]]:
            say(f"          -> {said[:160]}")
    for crash in fleet.crashes:
        say(f"  {crash.what}: {crash.service} ({crash.returncode}); last sent: {crash.recent[-3:]}")
    for service, kinds in errors.items():
        for kind, count in kinds[:8]:
            say(f"  {service} log [{count:>5}] {kind}")


def grouped(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Failure classes by failure, the most frequent first."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["failure"]].append(row)
    return dict(sorted(groups.items(), key=lambda item: -sum(r["count"] for r in item[1])))


def main() -> None:
    configure("ERROR")  # the checks replayed here would log every refusal
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="messages to send (10,000)")
    parser.add_argument(
        "--report",
        type=Path,
        default=Path(tempfile.gettempdir()) / "alongside-fuzz-report.json",
        help="where to write the details",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alongside-fuzz-") as state:
        figures = asyncio.run(fuzz(args.n, Path(state), args.report))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
