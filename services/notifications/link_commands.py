"""The commands of personal links: open one, send and check a one-time code, and the
one-click "stop what is not essential" from an email.

The console's people's pages send these as the link's organisation. A link is refused
alike whether it is unknown, tampered with (its signature does not match what it is bound
to) or of another organisation; an expired or revoked one is refused saying so, in plain
words. Every use is published as ``LinkUsed`` (the access log: the link's reference, whose,
for what), its id derived from the command's so a retry is logged once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from contracts.envelope import Event, wrap
from contracts.notifications import (
    CheckCode,
    ContactPreferences,
    ContactPreferencesSet,
    LinkOpened,
    LinkUsed,
    OpenLink,
    SendCode,
    StopNonEssential,
)
from contracts.records import Delivery, PersonalLink, PersonContact
from contracts.replies import CommandAccepted, CommandRejected
from runtime import topology
from runtime.changes import Change, Refused
from runtime.dispatch import Received
from runtime.logging import get_logger
from runtime.unit import answered, refusal
from services.notifications import links, pages, render
from services.notifications.email import Outgoing, compose
from services.notifications.gathering import (
    NotificationsDeps,
    channels_of,
    preferences_of,
    reachable,
    smtp_url,
    zone_of,
)
from services.notifications.handlers import PERSON_SOURCE, handlers
from services.notifications.reach import Reach, route
from services.notifications.transport import Outcome, Result

log = get_logger(__name__)
_NAMESPACE = uuid.UUID("6f1d2c3b-8a4e-4f5d-9e6c-7b8a9c0d1e2f")

NOT_KNOWN = "This link does not work. Ask your coordinator for a new one."
EXPIRED = "This link has expired. Ask your coordinator for a new one."
REVOKED = "This link has been turned off. Ask your coordinator for a new one."


async def _link(
    token: str, received: Received, deps: NotificationsDeps, lasting: bool = True
) -> tuple[str, PersonalLink]:
    """The link the token opens, or refused (``lasting``: an expired one is refused too)."""
    token_hash = links.hash_of(token)
    stored, _ = await deps.links.store.load(topology.LINKS_SCOPE, token_hash)
    link = stored.record if stored else None
    if link is None or link.org != received.org or not links.signed(deps.secret, token, link):
        raise Refused("token", NOT_KNOWN)
    if link.revoked:
        raise Refused("token", REVOKED)
    if lasting and link.expires_at <= deps.clock():
        raise Refused("token", EXPIRED)
    return token_hash, link


async def _used(
    link: PersonalLink, action: str, received: Received, deps: NotificationsDeps
) -> None:
    used = LinkUsed(link_ref=link.link_ref, person=link.person, purpose=link.purpose, action=action)
    await _publish(used, received, deps)


async def _publish(event: Event, received: Received, deps: NotificationsDeps) -> None:
    envelope = wrap(
        event,
        org=received.org,
        source="alongside/notifications",
        time=deps.clock(),
        cause=received.envelope,
        id=uuid.uuid5(_NAMESPACE, f"{received.org}:{received.envelope.id}").hex,
    )
    await deps.events.publish([envelope.model_dump_json()])


@handlers.on(OpenLink)
async def open_link(
    command: OpenLink, received: Received, deps: NotificationsDeps
) -> LinkOpened | CommandRejected:
    try:
        _, link = await _link(command.token, received, deps)
    except Refused as refused:
        return refusal(received, refused)
    await _used(link, command.action, received, deps)
    zone = await zone_of(received.org, deps)
    shown = await pages.page(received.org, link, deps.clock(), deps)
    return LinkOpened.model_validate(
        {
            "command_id": received.envelope.id,
            "link_ref": link.link_ref,
            "person": link.person,
            "case_id": link.case_id,
            "purpose": link.purpose,
            "expires_at": link.expires_at,
            "time_zone": zone.key,
            **shown,
        }
    )


@handlers.on(SendCode)
async def send_code(
    command: SendCode, received: Received, deps: NotificationsDeps
) -> CommandAccepted | CommandRejected:
    """A one-time code to the contact the link went to, by the person's channel; their
    quiet hours do not hold it back (they asked for it now), their safe-contact limits do."""
    org, now = received.org, deps.clock()
    try:
        token_hash, link = await _link(command.token, received, deps)
        if link.purpose != "consent":
            raise Refused("token", "A code is only needed to give or withdraw consent.")
        found = await reachable(org, link.person, deps)
        channels = await channels_of(org, deps)
        wishes = (await preferences_of(org, link.person, deps)).model_copy(
            update={"quiet_hours": None}
        )
        zone = await zone_of(org, deps)
        ready = smtp_url(channels, deps.settings) is not None
        way = route(True, wishes, found.contact, channels, ready, now, zone)
        if not isinstance(way, Reach) or channels is None:
            raise Refused("token", "We cannot send you a code just now. Please contact us.")
    except Refused as refused:
        return refusal(received, refused)
    link_now, _ = await deps.links.store.load(topology.LINKS_SCOPE, token_hash)
    if link_now is not None and link_now.record.code_sent_for == received.envelope.id:
        return _accepted(received)  # the same request again: its code went already
    code = links.new_code()
    await deps.links.change(
        topology.LINKS_SCOPE,
        token_hash,
        lambda current, _: _with_code(
            current, links.code_hash(deps.secret, token_hash, code), now, received.envelope.id
        ),
    )
    words = render.words("code", {}, zone, org, channels.from_name, code=code)
    message_id = uuid.uuid5(_NAMESPACE, f"code:{org}:{received.envelope.id}").hex
    if way.channel.value == "sms":
        assert channels.webhook_url is not None
        result = await deps.webhook.send(channels.webhook_url, way.address, words.sms, message_id)
    else:
        url = smtp_url(channels, deps.settings)
        assert url is not None
        outgoing = Outgoing(
            message_id=message_id,
            to_address=way.address,
            from_address=channels.from_address,
            from_name=channels.from_name,
            subject=words.subject,
            text=words.text,
            sent_at=now,
        )
        result = await deps.mail.send(compose(outgoing), url)
    await _record_code(org, message_id, link, way, result, now, deps)
    await _used(link, "send_code", received, deps)
    if result.outcome != Outcome.SENT:
        return refusal(
            received, Refused("token", "The code could not be sent just now. Please try again.")
        )
    return _accepted(received)


def _with_code(
    current: PersonalLink | None, hashed: str, now: datetime, command_id: str
) -> Change[PersonalLink]:
    assert current is not None
    until = now + links.CODE_LASTS
    update = {
        "code_hash": hashed,
        "code_until": until,
        "code_tries": links.CODE_TRIES,
        "code_sent_for": command_id,
    }
    return Change(current.model_copy(update=update))


async def _record_code(
    org: str,
    message_id: str,
    link: PersonalLink,
    way: Reach,
    result: Result,
    now: datetime,
    deps: NotificationsDeps,
) -> None:
    """The code's message is kept like any other (without the code)."""
    status = {Outcome.SENT: "sent", Outcome.BOUNCED: "bounced"}.get(result.outcome, "failed")
    delivery = Delivery(
        message_id=message_id,
        person_key=link.person_key,
        person=link.person,
        about="code",
        cause_id=message_id,
        essential=True,
        channel=way.channel.value,
        status=status,
        why=None if status == "sent" else result.detail,
        attempts=1,
        due_at=now,
        created_at=now,
        updated_at=now,
    )
    await deps.deliveries.change(
        org, message_id, lambda current, _: None if current else Change(delivery)
    )


@handlers.on(CheckCode)
async def check_code(
    command: CheckCode, received: Received, deps: NotificationsDeps
) -> CommandAccepted | CommandRejected:
    """The code typed, checked once: right, it is used up; wrong, one try fewer."""
    now = deps.clock()
    try:
        token_hash, _ = await _link(command.token, received, deps)
    except Refused as refused:
        return refusal(received, refused)
    typed = links.code_hash(deps.secret, token_hash, command.code)
    verdict: list[str] = []

    def check(current: PersonalLink | None, _: None) -> Change[PersonalLink] | None:
        verdict.clear()
        if current is None or current.code_hash is None or current.code_tries <= 0:
            verdict.append("That code has been used or has run out. Ask for a new one.")
            return None
        if current.code_until is None or current.code_until <= now:
            verdict.append("That code has run out. Ask for a new one.")
            return Change(current.model_copy(update={"code_hash": None, "code_tries": 0}))
        if current.code_hash != typed:
            verdict.append("That code is not right. Check it and try again.")
            tries = current.code_tries - 1
            update = {"code_tries": tries, **({"code_hash": None} if tries <= 0 else {})}
            return Change(current.model_copy(update=update))
        return Change(
            current.model_copy(update={"code_hash": None, "code_tries": 0, "code_checked_at": now})
        )

    await deps.links.change(topology.LINKS_SCOPE, token_hash, check)
    if verdict:
        return refusal(received, Refused("code", verdict[0]))
    return _accepted(received)


@handlers.on(StopNonEssential)
async def stop_non_essential(
    command: StopNonEssential, received: Received, deps: NotificationsDeps
) -> CommandAccepted | CommandRejected:
    """RFC 8058's one click: only what is essential from now on (an expired link still
    works for this; a revoked one does not)."""
    try:
        _, link = await _link(command.token, received, deps, lasting=False)
    except Refused as refused:
        return refusal(received, refused)
    now, key = deps.clock(), link.person_key
    chosen = ContactPreferencesSet(person=link.person, by="person")

    def stop(current: PersonContact | None, _: None) -> Change[PersonContact]:
        record = current or PersonContact(person_key=key, updated_at=now)
        wishes: ContactPreferences = record.preferences.model_copy(update={"essential_only": True})
        changed = record.model_copy(update={"preferences": wishes, "set_by": "person"})
        return Change(changed.model_copy(update={"updated_at": now}), [chosen])

    outcome = await deps.contacts.change(received.org, key, stop, command=received)
    await _used(link, "stop_non_essential", received, deps)
    return answered(outcome.reply)


def _accepted(received: Received) -> CommandAccepted:
    return CommandAccepted(
        command_id=received.envelope.id, command_type=received.envelope.type, event_ids=[]
    )


__all__ = ["PERSON_SOURCE"]
