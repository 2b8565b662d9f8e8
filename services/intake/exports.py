"""Everything held about one person, for a subject access request (``ExportPersonData``).

Intake holds the person's own record; matching, scheduling and the rules keep what they
decided about them. This reads each, as stored, with read-only access to those buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from pydantic import BaseModel

from contracts.records import (
    CaseMatch,
    CaseRecord,
    CaseSchedule,
    SupporterRecord,
    SupporterSupervision,
)
from contracts.rules import Kind
from runtime import topology
from runtime.state import CaseloadReader, DecisionLogReader, DecisionReader
from runtime.store import RecordStore, bound_store
from runtime.vault import Vault


@dataclass
class Holdings:
    cases: RecordStore[CaseRecord]
    supporters: RecordStore[SupporterRecord]
    matches: RecordStore[CaseMatch]
    schedules: RecordStore[CaseSchedule]
    supervision: RecordStore[SupporterSupervision]
    caseloads: CaseloadReader
    decisions: DecisionReader
    log: DecisionLogReader

    @classmethod
    async def bind(
        cls,
        js: JetStreamContext,
        cases: RecordStore[CaseRecord],
        supporters: RecordStore[SupporterRecord],
        vault: Vault,
    ) -> Holdings:
        return cls(
            cases=cases,
            supporters=supporters,
            matches=await bound_store(js, topology.MATCHES_BUCKET, CaseMatch, vault),
            schedules=await bound_store(js, topology.SCHEDULES_BUCKET, CaseSchedule, vault),
            supervision=await bound_store(js, topology.SUPERVISION_BUCKET, SupporterSupervision),
            caseloads=CaseloadReader(await js.key_value(topology.CASELOADS_BUCKET)),
            decisions=DecisionReader(await js.key_value(topology.DECISIONS_BUCKET), vault),
            log=DecisionLogReader(js, vault),
        )

    async def of_client(self, org: str, case_id: str) -> dict[str, Any]:
        """The case (the client's profile, dispute, parties and consents), its matching,
        its schedule and the rules' latest decisions about it; empty if no such case."""
        case = await _record(self.cases, org, case_id)
        if case is None:
            return {}
        held = {
            "case": case,
            "matching": await _record(self.matches, org, case_id),
            "schedule": await _record(self.schedules, org, case_id),
        }
        kinds = (Kind.MATCHING_POLICY, Kind.CONSENT, Kind.BOUNDARIES)
        return held | await self._decisions(org, case_id, kinds)

    async def of_supporter(self, org: str, supporter_id: str) -> dict[str, Any]:
        """The supporter's record (profile and vetting), caseload, supervision and the
        rules' latest eligibility decision; empty if no such supporter."""
        supporter = await _record(self.supporters, org, supporter_id)
        if supporter is None:
            return {}
        caseload, revision = await self.caseloads.load(org, supporter_id)
        held = {
            "supporter": supporter,
            "caseload": caseload.model_dump(mode="json") if revision else None,
            "supervision": await _record(self.supervision, org, supporter_id),
        }
        return held | await self._decisions(org, supporter_id, (Kind.ELIGIBILITY,))

    async def _decisions(
        self, org: str, subject_id: str, kinds: tuple[Kind, ...]
    ) -> dict[str, Any]:
        """The latest decision of each kind, and every logged one (the audit period's)."""
        found: dict[str, Any] = {}
        for kind in kinds:
            decision, _ = await self.decisions.get(org, kind, subject_id)
            found[f"decisions.{kind.value}"] = _json(decision)
        logged = await self.log.of_subject(org, subject_id)
        found["decision_log"] = [
            entry.decision.model_dump(mode="json")
            for entry in logged
            if entry.decision.kind in kinds
        ]
        return found


async def _record(store: RecordStore[Any], org: str, entity_id: str) -> dict[str, Any] | None:
    stored, _ = await store.load(org, entity_id)
    return _json(stored.record if stored is not None else None)


def _json(model: BaseModel | None) -> dict[str, Any] | None:
    return model.model_dump(mode="json") if model is not None else None
