"""What every part of the fuzz shares: its constants, the message types and probes, the
findings."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from contracts import subjects
from runtime import topology
from runtime.clock import SYSTEM
from runtime.dispatch import Handlers
from services.intake.handlers import handlers as intake_handlers
from services.matching.handlers import handlers as matching_handlers
from services.notifications import link_commands
from services.notifications.handlers import handlers as notifications_handlers
from services.rules.handlers import handlers as rules_handlers
from services.scheduling.handlers import handlers as scheduling_handlers

assert link_commands.PERSON_SOURCE  # (the link commands' handlers register on import)

SEED = 20261123
ORG = "fuzz-org"
OTHER_ORG = "fuzz-other"
UNKNOWN_ORG = "no-such-org"
BAD_SUBJECT_ORG = "X"  # one character: not an organisation token
SOURCE = "bench/fuzz"
REPLY_TIMEOUT_S = 5.0
COMMANDS_IN_FLIGHT = 16
EVENTS_IN_FLIGHT = 32
POOL = 30  # schema-valid payloads generated per message type (``--pool``)
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
    "notifications": notifications_handlers,
}
CONSUMERS = {spec.service: spec for spec in topology.CONSUMERS}
HANDLED_EVENTS = {t for s in CONSUMERS for t in HANDLERS[s].events}


def say(text: str) -> None:
    print(f"fuzz: {text}", file=sys.stderr, flush=True)


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
    if contract.kind == "command":  # not subjects.command, which refuses an invalid org
        return subjects.commands_of(contract.service, org, name, subjects.OPERATOR)
    return f"{subjects.PREFIX}.{org}.evt.{name}"


def on_live_records(probe: Probe) -> bool:
    return probe.recipe.startswith("handmade:absurd_")


@dataclass
class Letter:
    service: str
    reason: str
    fuzz_id: str | None
    msg_id: str | None
    subject: str


@dataclass
class Plan:
    probes: list[Probe]
    contracts: dict[str, Contract]

    def count(self) -> int:
        return sum(1 + (p.follows is not None) for p in self.probes)


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
