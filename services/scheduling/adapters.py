"""Where scheduling keeps and asks for things.

- ``schedules``, ``supervision``, ``groups``: its records, with their outbox
  (``alongside.runtime.store``);
- the rules service, asked to judge each booking against the boundaries ruleset;
- reminders as NATS message schedules: one schedule subject per session, replaced when
  the session moves and purged when it is cancelled; the server publishes the reminder
  event when its time comes, whether or not any service is running then.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from pydantic import TypeAdapter

from alongside.runtime import topology
from contracts import subjects
from contracts.envelope import Command, wrap
from contracts.records import Session
from contracts.rules import EvaluateRules, Kind, RulesDecision, RulesEvaluated, SessionFacts
from contracts.scheduling import SessionReminderDue

SOURCE = "alongside/scheduling"
_NAMESPACE = uuid.UUID("5c2f8a1e-7d3b-4e6a-9b0c-1f2e3d4c5b6a")
_RULES_REPLY: TypeAdapter[RulesEvaluated] = TypeAdapter(RulesEvaluated)


class Asking:
    """Requests to other services: the rules service judges, intake records."""

    def __init__(self, nc: Nats) -> None:
        self.nc = nc

    async def boundaries(self, org: str, facts: SessionFacts) -> RulesDecision:
        command = EvaluateRules(kind=Kind.BOUNDARIES, facts=facts.model_dump(mode="json"))
        response = await self._request(org, command, None)
        return _RULES_REPLY.validate_json(response).decision

    async def send(self, org: str, command: Command, command_id: str) -> bytes:
        """A command to another service, with an id derived from what caused it (so a retry
        is the same command)."""
        return await self._request(org, command, uuid.uuid5(_NAMESPACE, command_id).hex)

    async def _request(self, org: str, command: Command, command_id: str | None) -> bytes:
        envelope = wrap(command, org=org, source=SOURCE, id=command_id)
        subject = subjects.command(org, command.service, command.type_name)
        response = await self.nc.request(subject, envelope.model_dump_json().encode(), timeout=10)
        return response.data


class Reminders:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def set(
        self, org: str, case_id: str, session: Session, at: datetime, now: datetime
    ) -> None:
        subject = subjects.schedule(org, "reminder", session.session_id)
        if at <= now:
            await self.clear(org, session.session_id)
            return
        event = SessionReminderDue(
            case_id=case_id, session_id=session.session_id, start=session.start
        )
        envelope = wrap(
            event, org=org, source=SOURCE, time=at,
            id=uuid.uuid5(_NAMESPACE, f"{org}:{session.session_id}:{session.start}").hex,
        )  # fmt: skip
        headers = {
            "Nats-Schedule": f"@at {at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "Nats-Schedule-Target": subjects.event(org, SessionReminderDue.type_name),
        }
        await self.js.publish(subject, envelope.model_dump_json().encode(), headers=headers,
                              stream=topology.EVENTS_STREAM)  # fmt: skip

    async def clear(self, org: str, session_id: str) -> None:
        await self.js.purge_stream(
            topology.EVENTS_STREAM, subject=subjects.schedule(org, "reminder", session_id)
        )
