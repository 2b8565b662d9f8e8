"""Where scheduling keeps and asks for things.

- ``schedules``, ``supervision``, ``groups``: its records, with their outbox
  (``runtime.store``);
- reminders as NATS message schedules: one schedule subject per session, replaced when
  the session moves and purged when it is cancelled; the server publishes the reminder
  event when its time comes, whether or not any service is running then.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from nats.js import JetStreamContext

from contracts import subjects
from contracts.envelope import wrap
from contracts.records import Session
from contracts.scheduling import SessionReminderDue
from runtime import topology

SOURCE = "alongside/scheduling"
NAMESPACE = uuid.UUID("5c2f8a1e-7d3b-4e6a-9b0c-1f2e3d4c5b6a")


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
            event,
            org=org,
            source=SOURCE,
            time=at,
            id=uuid.uuid5(NAMESPACE, f"{org}:{session.session_id}:{session.start}").hex,
        )
        headers = {
            "Nats-Schedule": f"@at {at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "Nats-Schedule-Target": subjects.event(org, SessionReminderDue.type_name),
        }
        await self.js.publish(
            subject,
            envelope.model_dump_json().encode(),
            headers=headers,
            stream=topology.EVENTS_STREAM,
        )

    async def clear(self, org: str, session_id: str) -> None:
        """Cancel the session's reminder: the last message on a schedule's subject is its
        schedule (ADR-51), so a message with none stands in its place. (Purging the subject
        would need the right to purge the whole events stream: a purge request names its
        subject in the body, which permissions cannot check.)"""
        await self.js.publish(
            subjects.schedule(org, "reminder", session_id),
            b'{"cancelled":true}',
            stream=topology.EVENTS_STREAM,
        )
