"""Retention: nothing about a person is kept longer than their organisation says.

- A case closed ``retention_days`` ago (the organisation's setting, seven years unless
  set): its client is erased exactly as ``EraseClient`` erases them, by a command intake
  gives itself, its id derived from the case, so a sweep repeated after a crash is the
  same command.
- Dead letters: the stream drops those older than ``deadletters_days``, and the sweep
  erases the key each day's letters were sealed with, so no copy of them (a backup, a
  block not yet compacted) can be read after.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from contracts import subjects
from contracts.envelope import RawEnvelope, wrap
from contracts.intake import EraseClient, Stage
from contracts.records import OrganisationRecord
from contracts.replies import CommandAccepted
from runtime import topology
from runtime.dispatch import Received
from runtime.logging import get_logger
from runtime.store import keys, stream_subjects
from services.intake.handlers import SOURCE, IntakeDeps, erase_client

log = get_logger(__name__)

_NAMESPACE = uuid.UUID("0b6f7d2e-51c4-4a43-9d8e-2f6a1c9e7b35")


@dataclass
class Swept:
    cases_erased: int = 0
    dead_letter_days_erased: int = 0


async def sweep(deps: IntakeDeps) -> Swept:
    swept = Swept()
    now = deps.clock()
    for organisation in await deps.registry.all():
        swept.cases_erased += await _closed_cases(organisation, now, deps)
        swept.dead_letter_days_erased += await _dead_letter_days(organisation.org, now, deps)
    return swept


def expired(case: dict[str, object], days: int, now: datetime) -> bool:
    """A case record (as stored, sealed fields unopened) whose retention has run out."""
    if case.get("stage") != Stage.CLOSED.value:
        return False
    closed = datetime.fromisoformat(str(case.get("closed_at") or case["updated_at"]))
    return closed + timedelta(days=days) <= now


async def _closed_cases(organisation: OrganisationRecord, now: datetime, deps: IntakeDeps) -> int:
    org, store, erased = organisation.org, deps.holdings.cases, 0
    for name in await keys(store.kv, f"{org}.*"):
        case_id = name.split(".", 1)[1]
        case = await store.plain(org, case_id)
        if case is None or not expired(case, organisation.retention_days, now):
            continue
        command = EraseClient(case_id=case_id)
        envelope = wrap(
            command,
            org=org,
            source=f"{SOURCE}/retention",
            time=now,
            id=uuid.uuid5(_NAMESPACE, f"{org}:{case_id}").hex,
        )
        received = Received(
            org,
            RawEnvelope.model_validate_json(envelope.model_dump_json()),
            command,
            sender="intake",
        )
        reply = await erase_client(command, received, deps)
        done = isinstance(reply, CommandAccepted)
        log.info("retention_erased", org=org, case_id=case_id, erased=done)
        erased += done
    return erased


async def _dead_letter_days(org: str, now: datetime, deps: IntakeDeps) -> int:
    oldest_kept = now.date() - timedelta(days=deps.settings.deadletters_days)
    pattern = subjects.person_keys(org, "dead_letters")
    erased = 0
    for subject in await stream_subjects(deps.vault.js, topology.KEYS_STREAM, pattern):
        day = date.fromisoformat(subject.rsplit(".", 1)[1])
        if day < oldest_kept:
            erased += await deps.vault.erase(org, "dead_letters", day.isoformat(), by="retention")
    return erased
