"""Sending one message: decide it once, attempt it, record how it went.

``deliver`` keeps a plan as a ``Delivery`` (once: a redelivered event finds it kept) and
``attempt`` carries it out: read how the person may be reached now (``reach``), mint their
personal link if the message carries one (only its hash is kept), commit the attempt,
send, and record the outcome. What waits (quiet hours, a channel down) is attempted again
by the sweep when it is due; an attempt a crash interrupted, after ``STALE_SENDING``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from contracts.notifications import Channel, ChannelSettings
from contracts.records import Delivery, PersonalLink
from runtime import topology
from runtime.changes import Change
from runtime.logging import get_logger
from services.notifications import deliveries, links, render
from services.notifications.email import CalendarInvite, Outgoing, compose
from services.notifications.gathering import (
    NotificationsDeps,
    channels_of,
    preferences_of,
    reachable,
    smtp_url,
    zone_of,
)
from services.notifications.plans import Plan
from services.notifications.reach import Reach, Route, Withhold, route
from services.notifications.transport import Outcome, Result

log = get_logger(__name__)

SUMMARY = {
    "initial_meeting": "Peer support: first meeting",
    "regular": "Peer support session",
    "extra": "Peer support session",
    "supervision": "Supervision",
    "team_debrief": "Team debrief",
}


@dataclass(frozen=True)
class Attempt:
    """What an attempt needs, read just before it: where to send, and the link it carries."""

    route: Route
    channels: ChannelSettings | None
    zone: ZoneInfo
    token: str | None = None
    link_hash: str | None = None


async def deliver(org: str, plan: Plan, deps: NotificationsDeps) -> None:
    """Keep the plan as a message (once), and attempt it at once if it is new."""
    fresh = deliveries.planned(plan, deps.clock())
    await _attempt(org, plan.message_id, deps, fresh)


async def attempt(org: str, message_id: str, deps: NotificationsDeps) -> None:
    """Attempt a kept message that is due (the sweep's, after a wait or a crash)."""
    await _attempt(org, message_id, deps)


async def _attempt(
    org: str, message_id: str, deps: NotificationsDeps, fresh: Delivery | None = None
) -> None:
    """With ``fresh``: a new message, attempted only if nothing is kept under its id yet.
    Without: the kept one, if it is due. The token minted for the attempt decided on is held
    here, between its commit and its send, and never stored."""
    now = deps.clock()
    last: Attempt | None = None

    def target(current: Delivery | None) -> Delivery | None:
        if fresh is not None:
            return None if current is not None else fresh
        return current if current is not None and deliveries.due(current, now) else None

    async def gather(current: Delivery | None) -> Attempt | None:
        nonlocal last
        delivery = target(current)
        last = None if delivery is None else await _prepare(org, delivery, deps)
        return last

    def decide(current: Delivery | None, got: Attempt | None) -> Change[Delivery] | None:
        delivery = target(current)
        if delivery is None or got is None:
            return None  # planned before (a redelivery), or not due: nothing to do
        return deliveries.attempt(delivery, got.route, now, got.link_hash)

    outcome = await deps.deliveries.change(
        org, message_id, decide, gather=gather, release=lambda got: _forget(got, deps)
    )
    record = outcome.record
    if outcome.committed and record is not None:
        deps.waiting.keep(org, record)
        if record.status == "sending":
            await _send_and_record(org, record, last, deps)


async def _prepare(org: str, delivery: Delivery, deps: NotificationsDeps) -> Attempt:
    now = deps.clock()
    person = delivery.person
    found = await reachable(org, person, deps)
    channels = await channels_of(org, deps)
    zone = await zone_of(org, deps)
    if found.erased:
        return Attempt(Withhold("person_erased"), channels, zone)
    chosen = route(
        delivery.essential,
        await preferences_of(org, person, deps),
        found.contact,
        channels,
        smtp_url(channels, deps.settings) is not None,
        now,
        zone,
    )
    if not isinstance(chosen, Reach) or delivery.purpose is None or channels is None:
        return Attempt(chosen, channels, zone)
    ends = now + timedelta(days=channels.link_days)
    token, token_hash = links.mint(
        deps.secret, person.key, delivery.case_id, delivery.purpose, ends
    )
    link = PersonalLink(
        org=org,
        link_ref=links.ref_of(token_hash),
        person=person,
        person_key=person.key,
        case_id=delivery.case_id,
        purpose=delivery.purpose,
        expires_at=ends,
        created_at=now,
    )
    await deps.links.change(
        topology.LINKS_SCOPE, token_hash, lambda current, _: None if current else Change(link)
    )
    return Attempt(chosen, channels, zone, token, token_hash)


async def _forget(got: Attempt | None, deps: NotificationsDeps) -> None:
    """A link minted for an attempt that was not committed goes again."""
    if got is not None and got.link_hash is not None:
        await deps.links.store.remove(topology.LINKS_SCOPE, got.link_hash)


async def _send_and_record(
    org: str, delivery: Delivery, got: Attempt | None, deps: NotificationsDeps
) -> None:
    try:
        result = await _send(org, delivery, got, deps)
    except Exception as error:  # a template or transport fault is an outcome, not a crash
        log.warning("notification_send_error", org=org, error=type(error).__name__)
        result = Result(Outcome.RETRY, "the message could not be made or sent")
    now = deps.clock()
    settings = deps.settings
    recorded = await deps.deliveries.change(
        org,
        delivery.message_id,
        lambda current, _: deliveries.outcome(
            current,
            result,
            delivery.attempts,
            now,
            settings.notify_attempts,
            timedelta(seconds=settings.notify_first_retry_s),
        ),
    )
    if recorded.record is not None:
        deps.waiting.keep(org, recorded.record)
    log.info(
        "notification_attempted",
        org=org,
        message_id=delivery.message_id,
        about=delivery.about,
        attempt=delivery.attempts,
        outcome=result.outcome.value,
    )


async def _send(
    org: str, delivery: Delivery, got: Attempt | None, deps: NotificationsDeps
) -> Result:
    """Send on what the attempt read just before its commit (the channels, the address, the
    zone): nothing is read twice."""
    if got is None or not isinstance(got.route, Reach) or got.channels is None:
        return Result(Outcome.RETRY, "the channel or the contact is not there just now")
    channels, address, zone, token = got.channels, got.route.address, got.zone, got.token
    link = f"{channels.pages_url.rstrip('/')}/p/{token}" if token else ""
    words = render.words(
        delivery.about,
        delivery.facts,
        zone,
        org,
        channels.from_name,
        link,
        folder=deps.settings.messages_dir,
    )
    now = deps.clock()
    if delivery.channel == Channel.SMS.value:
        assert channels.webhook_url is not None
        return await deps.webhook.send(
            channels.webhook_url, address, words.sms, delivery.message_id
        )
    url = smtp_url(channels, deps.settings)
    assert url is not None
    outgoing = Outgoing(
        message_id=delivery.message_id,
        to_address=address,
        from_address=channels.from_address,
        from_name=channels.from_name,
        subject=words.subject,
        text=words.text,
        sent_at=now,
        unsubscribe_url=f"{link}/unsubscribe" if token else None,
        invitation=_invite(delivery, zone, now),
    )
    return await deps.mail.send(compose(outgoing), url)


def _invite(delivery: Delivery, zone: ZoneInfo, now: datetime) -> CalendarInvite | None:
    invitation = delivery.invitation
    if invitation is None:
        return None
    return CalendarInvite(
        uid=invitation.uid,
        method=invitation.method,
        sequence=invitation.sequence,
        start=invitation.start,
        end=invitation.end,
        summary=SUMMARY.get(invitation.kind, "Peer support session"),
        time_zone=zone.key,
        stamp=now,
    )
