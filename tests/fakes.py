"""In-memory stand-ins for what the services keep in NATS, so handlers run without a broker.

Like cosmicpython's ``FakeRepository``: the stores (``RecordStore``, ``ReplyStore``,
``CaseloadStore``, ``DecisionStore``) run unchanged over ``FakeKeyValue``, which keeps
JetStream KV's revision semantics (create fails on an existing key, update needs the
last revision). ``FakePublisher`` records what would have been published, ``FakeAsking``
answers as intake and the rules service would (the shipped default rulesets, evaluated
in process), ``FakeReminders`` records message schedules. What is about delivery,
dedupe, redelivery and restarts is tested against the real nats-server instead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from contracts import subjects
from contracts.envelope import Command, Envelope, Event, Message, RawEnvelope, wrap
from contracts.records import Session
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import FACTS, EvaluateRules, Kind, RulesDecision, RulesEvaluated
from runtime import topology
from runtime.asking import Asking
from runtime.clock import Clock, ManualClock
from runtime.dispatch import Handlers, Meta, Received
from runtime.state import StoredDecision
from runtime.unit import EventPublisher
from runtime.vault import Erased, Holder, Vault
from services.rules import domain as rules_domain
from services.rules.adapters import DecisionStore
from services.rules.engine import Engine
from services.rules.handlers import subject_of
from services.rules.live import LiveRulesets
from services.scheduling.adapters import Reminders


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes | None
    revision: int


@dataclass
class FakeKeyValue:
    """A KV bucket in memory: one revision sequence per bucket, as JetStream numbers them."""

    entries: dict[str, Entry] = field(default_factory=dict)
    sequence: int = 0

    async def get(self, key: str) -> Entry:
        entry = self.entries.get(key)
        if entry is None:
            raise KeyNotFoundError
        return entry

    def _write(self, key: str, value: bytes) -> int:
        self.sequence += 1
        self.entries[key] = Entry(key, value, self.sequence)
        return self.sequence

    async def create(self, key: str, value: bytes) -> int:
        if key in self.entries:
            raise KeyWrongLastSequenceError
        return self._write(key, value)

    async def update(self, key: str, value: bytes, last: int) -> int:
        current = self.entries.get(key)
        if current is None or current.revision != last:
            raise KeyWrongLastSequenceError
        return self._write(key, value)

    async def put(self, key: str, value: bytes) -> int:
        return self._write(key, value)

    # What ``runtime.store.keys`` reads: the bucket stream's subject index (JetStream's
    # STREAM.INFO with a subjects filter), one page of every matching key.
    _pre = "$KV.fake."
    _stream = "KV_fake"
    _prefix = "$JS.API"

    @property
    def _js(self) -> FakeKeyValue:
        return self

    async def _api_request(self, subject: str, request: bytes, timeout: float) -> dict[str, Any]:
        wanted = json.loads(request)
        pattern = wanted["subjects_filter"].removeprefix(self._pre)
        found = {self._pre + k: 1 for k in sorted(self.entries) if subjects.matches(pattern, k)}
        page = dict(list(found.items())[wanted.get("offset", 0) :])
        return {"state": {"subjects": page}, "total": len(found)}

    def as_kv(self) -> KeyValue:
        """Typed as the real bucket for the stores; it answers every call they make."""
        return cast(KeyValue, self)


class FakePublisher(EventPublisher):
    """Records each published envelope, keeping one per id as JetStream's dedupe would."""

    def __init__(self) -> None:
        self.published: list[RawEnvelope] = []

    async def publish(self, serialized_envelopes: list[str]) -> None:
        seen = {e.id for e in self.published}
        for raw in serialized_envelopes:
            envelope = RawEnvelope.model_validate_json(raw)
            if envelope.id not in seen:
                self.published.append(envelope)
                seen.add(envelope.id)

    def of(self, event_type: str) -> list[RawEnvelope]:
        return [e for e in self.published if e.type == event_type]


class FakeAsking(Asking):
    """Another service's answers, in process: every command is accepted (and kept), every
    evaluation is the shipped default ruleset's decision."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[Command] = []
        self.rules = LiveRulesets(Engine())

    async def command(
        self, org: str, command: Command, command_id: str, cause: RawEnvelope | None = None
    ) -> CommandAccepted | CommandRejected:
        self.sent.append(command)
        return CommandAccepted(command_id=command_id, command_type=command.type_name, event_ids=[])

    async def evaluate(self, org: str, command: EvaluateRules) -> RulesEvaluated | CommandRejected:
        fact = FACTS[command.kind].model_validate(command.facts).model_dump(mode="json")
        with self.rules.lease(org, command.kind) as loaded:
            decision = rules_domain.decide(
                loaded, subject_of(command.kind, fact), fact, self.clock()
            )
        return RulesEvaluated(command_id=uuid.uuid4().hex, decision=decision)


class FakeReminders(Reminders):
    """Message schedules as a dict: session id -> when its reminder is due."""

    def __init__(self) -> None:
        self.due: dict[str, datetime] = {}

    async def set(
        self, org: str, case_id: str, session: Session, at: datetime, now: datetime
    ) -> None:
        if at <= now:
            self.due.pop(session.session_id, None)
        else:
            self.due[session.session_id] = at

    async def clear(self, org: str, session_id: str) -> None:
        self.due.pop(session_id, None)


ORG = "harbour-ombudsman"
D = TypeVar("D")


@dataclass
class ServiceWorld(Generic[D]):
    """One service's handlers over fakes: deliver events, send commands, keep the records
    and decisions other services would have made, all in one process and one clock."""

    clock: ManualClock
    kv: dict[str, FakeKeyValue]
    events: FakePublisher
    asking: FakeAsking
    handlers: Handlers[D]
    deps: D
    delivered: int = 0  # how many published events ``settle`` has handed back in
    # The people's keys, shared by this service and the others it stands in for.
    vault: FakeVault = field(default_factory=lambda: FakeVault())

    async def settle(self) -> None:
        """Hand every event published so far, and those they lead to, to this service's own
        handlers, in order, as its durable consumer would (events it does not handle are
        acknowledged)."""
        while self.delivered < len(self.events.published):
            envelope = self.events.published[self.delivered]
            self.delivered += 1
            route = self.handlers.events.get(envelope.type)
            if route is not None:
                event = route.model.model_validate(envelope.data)
                await route.handler(event, Meta(ORG, envelope), self.deps)

    async def keep(self, bucket: str, key: str, record: BaseModel) -> None:
        """A record as its owning service stores it (``{"record": ..., "outbox": null}``)."""
        value = b'{"record": %s, "outbox": null}' % record.model_dump_json().encode()
        await self.kv[bucket].put(f"{ORG}.{key}", value)

    async def decide(self, kind: Kind, subject_id: str, fact: BaseModel) -> RulesDecision:
        """The rules service's decision on ``fact`` (the shipped rulesets), stored where it
        keeps its decisions."""
        with self.asking.rules.lease(ORG, kind) as loaded:
            decision = rules_domain.decide(
                loaded, subject_id, fact.model_dump(mode="json"), self.clock()
            )
        store = DecisionStore(self.kv[topology.DECISIONS_BUCKET].as_kv(), self.vault)
        _, revision = await store.get(ORG, kind, subject_id)
        await store.put(ORG, StoredDecision(decision=decision), revision)
        return decision

    async def on(self, event: Event) -> None:
        """Deliver an event to the handler of its type, as the durable consumer would."""
        envelope = wrap(event, org=ORG, source="test", time=self.clock(), id=uuid.uuid4().hex)
        route = self.handlers.events[event.type_name]
        await route.handler(event, Meta(ORG, _raw(envelope)), self.deps)

    async def send(self, command: Command) -> Message:
        """A command to the handler of its type, as the command subscription would."""
        envelope = wrap(command, org=ORG, source="test", time=self.clock(), id=uuid.uuid4().hex)
        route = self.handlers.commands[command.type_name]
        reply: Message = await route.handler(
            command, Received(ORG, _raw(envelope), command, subjects.CONSOLE), self.deps
        )
        return reply


def _raw(envelope: Envelope[Any]) -> RawEnvelope:
    return RawEnvelope.model_validate_json(envelope.model_dump_json())


def received(command: Command, org: str = "org-1", command_id: str = "cmd-1") -> Received:
    """A command as the command subscription hands it to a handler."""
    envelope = wrap(
        command, org=org, source="test", time=datetime(2027, 1, 1, tzinfo=UTC), id=command_id
    )
    return Received(org, _raw(envelope), command, subjects.CONSOLE)


def fake_buckets(names: Iterable[str]) -> dict[str, FakeKeyValue]:
    return {name: FakeKeyValue() for name in names}


def as_buckets(fakes: Mapping[str, FakeKeyValue]) -> dict[str, KeyValue]:
    return {name: kv.as_kv() for name, kv in fakes.items()}


class FakeVault(Vault):
    """The vault's keys without a server: made on first use, gone when erased."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str, str], bytes] = {}
        self.erased: dict[tuple[str, str, str], str] = {}

    async def key(self, org: str, person: Holder, person_id: str) -> bytes | None:
        if (org, person, person_id) in self.erased:
            raise Erased(person_id, self.erased[org, person, person_id])
        return self.keys.get((org, person, person_id))

    async def key_or_new(
        self, org: str, person: Holder, person_id: str, fresh: bool = False
    ) -> bytes:
        found = await self.key(org, person, person_id)
        return found or self.keys.setdefault((org, person, person_id), bytes(range(32)))

    async def erase(self, org: str, person: Holder, person_id: str, by: str = "") -> bool:
        self.erased[org, person, person_id] = by
        return self.keys.pop((org, person, person_id), None) is not None
