"""Where the rules service keeps things.

- ``rules``: published rulesets, key ``<org>.<kind>``, with history for rollback;
- ``decisions``: its latest decision per subject (``DecisionStore``; other services read
  them through ``runtime.state.DecisionReader``);
- the decision log (stream ``DECISIONLOG``): every decision with why, kept for the
  organisation's audit period (``DecisionLog``; operators read it, no organisation can).
"""

from __future__ import annotations

import json
from functools import partial

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from contracts import subjects
from contracts.records import DEFAULT_AUDIT_DAYS
from contracts.rules import Kind, LoggedDecision, PublishedRuleset, RulesDecision
from runtime import bus, store, topology
from runtime.logging import get_logger
from runtime.registry import Registry
from runtime.state import DecisionLogReader, DecisionReader, StoredDecision, each_decision
from runtime.store import Conflict, Outbox, Stored
from runtime.vault import Vault

log = get_logger(__name__)


def decision_key(kind: Kind, subject_id: str) -> str:
    """A decision's place in the unit of work's terms: ``<kind>.<subject_id>`` (its KV key
    is ``<org>.<kind>.<subject_id>``)."""
    return f"{kind.value}.{subject_id}"


class DecisionStore(DecisionReader):
    async def put(self, org: str, stored: StoredDecision, revision: int) -> int | Conflict:
        """Store a decision in its stored form by compare-and-set on the revision it was
        decided after."""
        decision = stored.decision
        key = f"{org}.{decision_key(decision.kind, decision.subject_id)}"
        raw = stored.model_dump(mode="json", exclude_none=True)
        sealed = await each_decision(raw, partial(self.sealer.seal, org))
        value = json.dumps(sealed, separators=(",", ":"), ensure_ascii=False).encode()
        return await store.compare_and_set(self._kv, key, value, revision)

    async def purge(self, org: str, entity_id: str) -> None:
        await self._kv.purge(f"{org}.{entity_id}")


class DecisionRecords:
    """The latest decisions as the unit of work keeps them (``runtime.unit.Store``), keyed
    ``<kind>.<subject_id>``. Their stored form is the one every reader knows
    (``runtime.state.StoredDecision``): the outbox is the announcement and the decision log
    entry, while they are unpublished."""

    kind = "RulesDecision"

    def __init__(self, decisions: DecisionStore) -> None:
        self.decisions = decisions

    def stored(self, record: RulesDecision, outbox: Outbox | None = None) -> Stored[RulesDecision]:
        return Stored[RulesDecision](record=record, outbox=outbox)

    async def load(self, org: str, entity_id: str) -> tuple[Stored[RulesDecision] | None, int]:
        kind, subject_id = entity_id.split(".", 1)
        found, revision = await self.decisions.load(org, Kind(kind), subject_id)
        if found is None:
            return None, revision
        outbox = None
        if found.unpublished:
            logged = LoggedDecision.model_validate_json(found.log) if found.log else None
            outbox = Outbox(
                events=[found.announce] if found.announce else [],
                cause_id=logged.cause_id if logged else None,
                written_at=found.decision.decided_at,
            )
        return self.stored(found.decision, outbox), revision

    async def save(
        self, org: str, entity_id: str, stored: Stored[RulesDecision], revision: int
    ) -> int | Conflict:
        decision, outbox = stored.record, stored.outbox
        kept = StoredDecision(decision=decision)
        if outbox is not None:
            logged = LoggedDecision(org=org, decision=decision, cause_id=outbox.cause_id)
            announce = outbox.events[0] if outbox.events else None
            kept = kept.model_copy(update={"announce": announce, "log": logged.model_dump_json()})
        return await self.decisions.put(org, kept, revision)

    async def remove(self, org: str, entity_id: str) -> None:
        """Remove the latest decision about someone erased, every revision of it (the
        decision log keeps what was decided, by id, for the audit period)."""
        await self.decisions.purge(org, entity_id)

    async def each(self, org: str = "*") -> list[tuple[str, str, Stored[RulesDecision], int]]:
        found = []
        for kind in Kind:
            for subject_org, subject_id in await self.decisions.subjects(kind):
                if org not in ("*", subject_org):
                    continue
                entity_id = decision_key(kind, subject_id)
                stored, revision = await self.load(subject_org, entity_id)
                if stored is not None:
                    found.append((subject_org, entity_id, stored, revision))
        return found


class DecisionLog(DecisionLogReader):
    """The decision log as the rules service writes it."""

    def __init__(self, js: JetStreamContext, vault: Vault, registry: Registry) -> None:
        super().__init__(js, vault)
        self.registry = registry

    async def append(self, logged: LoggedDecision) -> None:
        """Keep one decision for its organisation's audit period (idempotent: the decision
        id is the message id)."""
        decision = logged.decision
        assert decision.decision_id is not None, "only a decision with an id is logged"
        record, _ = await self.registry.get(logged.org)
        # An organisation no longer registered keeps its decisions the default period.
        days = record.audit_days if record is not None else DEFAULT_AUDIT_DAYS
        raw = logged.model_dump(mode="json")
        raw["decision"] = await self.sealer.seal(logged.org, raw["decision"])
        await bus.publish_durably(
            self.js,
            subjects.decision_log(
                logged.org, decision.kind.value, decision.subject_id, decision.decision_id
            ),
            json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode(),
            msg_id=decision.decision_id,
            stream=topology.DECISION_LOG_STREAM,
            headers={"Nats-TTL": f"{days * 24}h"},
        )


class RulesStore:
    """Published rulesets. The KV history of a key is its publication history."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @staticmethod
    def key(org: str, kind: Kind) -> str:
        return f"{org}.{kind.value}"

    async def put(self, document: PublishedRuleset) -> int:
        payload = document.model_dump_json(exclude={"revision"}).encode()
        return await self.kv.put(self.key(document.org, document.kind), payload)

    async def current(self, org: str, kind: Kind) -> PublishedRuleset | None:
        """The live publication; None when there is none, or it cannot be read."""
        key = self.key(org, kind)
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        return self.readable(key, entry.value, entry.revision)

    async def history(self, org: str, kind: Kind) -> list[PublishedRuleset]:
        """Every readable publication, oldest first; an unreadable one is logged and passed
        over (it once broke rollback for its organisation and kind)."""
        key = self.key(org, kind)
        # Read as a stream, not with nats-py's KV history: that can end before its first
        # entry arrives, and rollback then found no earlier version.
        # (nats-py 2.16 (pinned) keeps the bucket's JetStream context in this attribute.)
        kept = await bus.every_message(
            self.kv._js, f"KV_{topology.RULES_BUCKET}", f"$KV.{topology.RULES_BUCKET}.{key}"
        )
        documents = (
            self.readable(key, m.data, m.metadata.sequence.stream) for m in kept if m.data
        )  # (not a delete or purge marker)
        return [d for d in documents if d is not None]

    async def all(self) -> list[PublishedRuleset]:
        """The current publication of every organisation and kind that has a readable one."""
        documents = []
        for key in await store.keys(self.kv, ">"):
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                continue
            document = self.readable(key, entry.value, entry.revision)
            if document is not None:
                documents.append(document)
        return documents

    @staticmethod
    def readable(key: str, value: bytes | None, revision: int | None) -> PublishedRuleset | None:
        """A stored publication, or None (logged) if it cannot be read."""
        try:
            document = PublishedRuleset.model_validate_json(value or b"")
        except ValidationError:
            log.error("ruleset_unreadable", key=key, revision=revision)
            return None
        return document.model_copy(update={"revision": revision or 0})
