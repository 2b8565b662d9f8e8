"""A message's life, as pure decisions on its ``Delivery`` record.

planned -> withheld (a safeguard holds it back, for good)
        -> deferred (the person's hours, or the channel did not answer: tried again later)
        -> sending  (an attempt is under way) -> sent | bounced | deferred | failed

Each decision returns the record's next state and the event announcing it; the unit of
work commits them. ``sending`` is written before the message leaves, so a redelivered
event or a second replica finds the attempt taken; a crash between the send and its
outcome leaves ``sending``, which the sweep tries again after ``STALE_SENDING`` with the
same Message-ID (mail clients show one message for one id).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.envelope import Event
from contracts.notifications import (
    Channel,
    NotificationBounced,
    NotificationDeferred,
    NotificationFailed,
    NotificationSent,
    NotificationWithheld,
)
from contracts.records import Delivery
from runtime.changes import Change
from services.notifications.plans import Plan
from services.notifications.reach import Reach, Route, Wait, Withhold
from services.notifications.transport import Outcome, Result

STALE_SENDING = timedelta(minutes=2)
# Waiting for a channel: 30 s, 1, 2, 4 ... minutes, never more than an hour apart.
MAX_BACKOFF = timedelta(hours=1)


def planned(plan: Plan, now: datetime) -> Delivery:
    return Delivery(
        message_id=plan.message_id,
        person_key=plan.person.key,
        person=plan.person,
        about=plan.about,
        cause_id=plan.cause_id,
        essential=plan.essential,
        facts=plan.facts,
        invitation=plan.invitation,
        purpose=plan.purpose,
        case_id=plan.case_id or plan.person.case_id,
        status="queued",
        due_at=now,
        created_at=now,
        updated_at=now,
    )


def due(delivery: Delivery, now: datetime) -> bool:
    """Whether an attempt may start now."""
    if delivery.status in ("queued", "deferred"):
        return delivery.due_at <= now
    return delivery.status == "sending" and delivery.updated_at + STALE_SENDING <= now


def attempt(
    delivery: Delivery | None, route: Route, now: datetime, link_hash: str | None
) -> Change[Delivery] | None:
    """Start an attempt, or say why not (yet). None: nothing to do (another attempt took
    it, or it is finished)."""
    if delivery is None or not due(delivery, now):
        return None
    base = {"updated_at": now}
    if isinstance(route, Withhold):
        record = delivery.model_copy(update={**base, "status": "withheld", "why": route.because})
        event: Event = NotificationWithheld(
            message_id=delivery.message_id,
            person=delivery.person,
            about=delivery.about,
            because=route.because,
        )
        return Change(record, [event])
    if isinstance(route, Wait):
        if delivery.status == "deferred" and delivery.due_at == route.until:
            return None
        record = delivery.model_copy(
            update={**base, "status": "deferred", "why": route.because, "due_at": route.until}
        )
        event = NotificationDeferred(
            message_id=delivery.message_id,
            person=delivery.person,
            about=delivery.about,
            until=route.until,
            because=route.because,
        )
        return Change(record, [event])
    assert isinstance(route, Reach)
    record = delivery.model_copy(
        update={
            **base,
            "status": "sending",
            "why": None,
            "channel": route.channel.value,
            "attempts": delivery.attempts + 1,
            "link_hash": link_hash,
        }
    )
    return Change(record)


def outcome(
    delivery: Delivery | None,
    result: Result,
    attempt_no: int,
    now: datetime,
    max_attempts: int,
    first_wait: timedelta,
) -> Change[Delivery] | None:
    """Record how attempt ``attempt_no`` went (once: a later attempt's outcome wins)."""
    if delivery is None or delivery.status != "sending" or delivery.attempts != attempt_no:
        return None
    channel = Channel(delivery.channel or Channel.EMAIL)
    person, message_id, about = delivery.person, delivery.message_id, delivery.about
    base = {"updated_at": now, "why": result.detail}
    if result.outcome == Outcome.SENT:
        record = delivery.model_copy(update={**base, "status": "sent", "why": None})
        event: Event = NotificationSent(
            message_id=message_id, person=person, about=about, channel=channel, attempt=attempt_no
        )
    elif result.outcome == Outcome.BOUNCED:
        record = delivery.model_copy(update={**base, "status": "bounced"})
        event = NotificationBounced(
            message_id=message_id, person=person, about=about, channel=channel
        )
    elif attempt_no >= max_attempts:
        record = delivery.model_copy(update={**base, "status": "failed"})
        event = NotificationFailed(
            message_id=message_id, person=person, about=about, channel=channel, attempts=attempt_no
        )
    else:
        wait = min(first_wait * 2 ** (attempt_no - 1), MAX_BACKOFF)
        until = now + wait
        record = delivery.model_copy(update={**base, "status": "deferred", "due_at": until})
        event = NotificationDeferred(
            message_id=message_id,
            person=person,
            about=about,
            until=until,
            because="channel_unavailable",
        )
    return Change(record, [event])
