"""The organisations registered to use this deployment (``alongside orgs``).

Several schemes share one installation, so an organisation is provisioned on purpose: a
command, a rules publication or an import for an organisation that is not registered,
or is disabled, is refused naming it, and nothing is stored. (A typo such as
``harbor-ombudsman`` used to be accepted as a new tenant.)
"""

from __future__ import annotations

import time
from typing import Literal

from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import ValidationError

from contracts.records import OrganisationRecord
from runtime import topology
from runtime.clock import SYSTEM, Clock
from runtime.settings import Settings
from runtime.store import Conflict, compare_and_set, keys, read

# An active registration is trusted this long without reading it again; a disabling takes
# effect on every replica within it. An unknown organisation is read every time, so one
# just added works at once.
ACTIVE_FOR_S = 5.0


class RegistryError(ValueError):
    """An operator's request the registry cannot carry out, said in one line."""


class Registry:
    def __init__(self, kv: KeyValue, clock: Clock) -> None:
        self.kv = kv
        self.clock = clock
        self._active_until: dict[str, float] = {}

    @staticmethod
    def key(org: str) -> str:
        return org

    async def get(self, org: str) -> tuple[OrganisationRecord | None, int]:
        return await read(self.kv, self.key(org), OrganisationRecord)

    async def all(self) -> list[OrganisationRecord]:
        found = []
        for name in await keys(self.kv, "*"):
            record, _ = await self.get(name)
            if record is not None:
                found.append(record)
        return found

    async def add(self, org: str, name: str) -> OrganisationRecord:
        """Register ``org`` (or make a disabled one active again, with this name)."""
        current, revision = await self.get(org)
        if current is not None and current.status == "active":
            raise RegistryError(f"organisation {org!r} is already registered ({current.name})")
        now = self.clock()
        record = OrganisationRecord(
            org=org,
            name=name,
            status="active",
            registered_at=current.registered_at if current else now,
            updated_at=now,
        )
        await self._save(record, revision)
        return record

    async def set_days(
        self, org: str, period: Literal["audit_days", "retention_days"], days: int
    ) -> OrganisationRecord:
        """How long the organisation's decision log is kept (``audit_days``, from its next
        decision on), or its closed cases (``retention_days``, from the next sweep on)."""
        current, revision = await self.get(org)
        if current is None:
            raise RegistryError(f"organisation {org!r} is not registered")
        try:
            record = OrganisationRecord.model_validate(
                {**current.model_dump(), period: days, "updated_at": self.clock()}
            )
        except ValidationError as error:
            raise RegistryError(f"{period.replace('_', ' ')}: {error.errors()[0]['msg']}") from None
        await self._save(record, revision)
        return record

    async def disable(self, org: str) -> OrganisationRecord:
        current, revision = await self.get(org)
        if current is None:
            raise RegistryError(f"organisation {org!r} is not registered")
        record = current.model_copy(update={"status": "disabled", "updated_at": self.clock()})
        await self._save(record, revision)
        return record

    async def _save(self, record: OrganisationRecord, revision: int) -> None:
        value = record.model_dump_json().encode()
        if isinstance(
            await compare_and_set(self.kv, self.key(record.org), value, revision), Conflict
        ):
            changed = f"organisation {record.org!r} changed meanwhile; try again"
            raise RegistryError(changed) from None

    async def refusal(self, org: str) -> str | None:
        """Why ``org`` may not use the deployment now, or None when it may."""
        if self._active_until.get(org, 0.0) > time.monotonic():
            return None
        record, _ = await self.get(org)
        if record is None:
            return f"organisation {org!r} is not registered here"
        if record.status != "active":
            return f"organisation {org!r} is disabled"
        self._active_until[org] = time.monotonic() + ACTIVE_FOR_S
        return None


async def register(
    js: JetStreamContext, org: str, name: str, settings: Settings, clock: Clock
) -> OrganisationRecord:
    """Register ``org`` as ``alongside orgs add`` does: its own events stream first (so an
    active organisation always has one), then the registration."""
    await topology.provision_org(js, org, settings)
    return await Registry(await js.key_value(topology.REGISTRY_BUCKET), clock).add(org, name)


async def provision_registered(js: JetStreamContext, settings: Settings) -> None:
    """Bring every registered organisation's own stream up to date (``alongside provision``)."""
    registry = Registry(await js.key_value(topology.REGISTRY_BUCKET), SYSTEM)
    for record in await registry.all():
        await topology.provision_org(js, record.org, settings)
