"""The records behind ``alongside calendar``: one client's or one supporter's sessions."""

from __future__ import annotations

from typing import TypeVar
from zoneinfo import ZoneInfo

from nats.js import JetStreamContext
from nats.js.errors import InvalidKeyError, KeyNotFoundError

from contracts.records import (
    CaseSchedule,
    GroupSession,
    Record,
    SchedulingSettings,
    SupporterSupervision,
)
from runtime import topology
from runtime.clock import SYSTEM, Clock
from runtime.state import Policies
from runtime.store import RecordStore, bound_store
from runtime.vault import Vault
from services.scheduling.calendar import feed


async def calendar_for(
    js: JetStreamContext,
    org: str,
    vault: Vault,
    *,
    case: str | None = None,
    supporter: str | None = None,
    clock: Clock = SYSTEM,
) -> bytes:
    policy = await Policies(
        RecordStore(await js.key_value(topology.ORGANISATIONS_BUCKET), SchedulingSettings)
    ).get(org)
    schedules = await _records(
        await bound_store(js, topology.SCHEDULES_BUCKET, CaseSchedule, vault), org
    )
    groups = await _records(await bound_store(js, topology.GROUPS_BUCKET, GroupSession), org)
    zone = ZoneInfo(policy.time_zone)
    if case is not None:
        sessions = [s for s in schedules if s.case_id == case]
        joined = [g for g in groups if case in g.participants]
        if not (sessions or joined or await _held(js, topology.CASES_BUCKET, org, case)):
            raise NotFound(f"no case {case!r} in {org}")
        return feed(f"Peer support ({case})", zone, clock(), sessions, groups=joined)
    assert supporter is not None
    stored, _ = await RecordStore(
        await js.key_value(topology.SUPERVISION_BUCKET), SupporterSupervision
    ).load(org, supporter)
    sessions = [s for s in schedules if s.supporter_id == supporter]
    facilitated = [g for g in groups if g.facilitator_id == supporter]
    if not (
        sessions
        or facilitated
        or stored
        or await _held(js, topology.SUPPORTERS_BUCKET, org, supporter)
    ):
        raise NotFound(f"no supporter {supporter!r} in {org}")
    return feed(
        f"Peer support ({supporter})",
        zone,
        clock(),
        sessions,
        supervision=stored.record if stored else None,
        groups=facilitated,
    )


R = TypeVar("R", bound=Record)


class NotFound(LookupError):
    """Nothing is held about the case or supporter asked for: no record, no session."""


async def _held(js: JetStreamContext, bucket: str, org: str, key: str) -> bool:
    try:
        await (await js.key_value(bucket)).get(f"{org}.{key}")
    except (KeyNotFoundError, InvalidKeyError):  # none, or no id anything could have
        return False
    return True


async def _records(store: RecordStore[R], org: str) -> list[R]:
    return [stored.record for _, _, stored, _ in await store.each(org)]
