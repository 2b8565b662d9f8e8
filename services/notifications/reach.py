"""Whether, how and when a person may be reached: safe contact first, then their wishes.

Pure: the person's preferences and contact details, the organisation's channels and the
time in, a decision out. In this order, because a message on a shared phone can put
someone at risk:

1. "do not contact" withholds everything;
2. no contact details, or no consent to be contacted, withholds everything;
3. what is not essential is withheld from someone who asked for the essential only;
4. the channel is the one contact is limited to, else the one they chose;
5. outside the one window contact is limited to, or inside their quiet hours, the message
   waits for the next allowed minute (never dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from contracts.intake import Contact
from contracts.notifications import Channel, ChannelSettings, ContactPreferences, Window, Withheld


@dataclass(frozen=True)
class Reach:
    channel: Channel
    address: str


@dataclass(frozen=True)
class Wait:
    until: datetime
    because: Literal["quiet_hours", "contact_window"]


@dataclass(frozen=True)
class Withhold:
    because: Withheld


Route = Reach | Wait | Withhold


def route(
    essential: bool,
    preferences: ContactPreferences,
    contact: Contact | None,
    channels: ChannelSettings | None,
    email_ready: bool,
    now: datetime,
    zone: ZoneInfo,
) -> Route:
    """How to reach the person now, when to try again, or why not at all."""
    if preferences.do_not_contact:
        return Withhold("do_not_contact")
    if contact is None:
        return Withhold("no_contact")
    if not contact.may_contact:
        return Withhold("no_consent_to_contact")
    if preferences.essential_only and not essential:
        return Withhold("not_essential")
    channel = preferences.only_channel or preferences.channel
    address = contact.email if channel == Channel.EMAIL else contact.phone
    if address is None:
        return Withhold("no_contact")
    ready = email_ready if channel == Channel.EMAIL else bool(channels and channels.webhook_url)
    if channels is None or not ready:
        return Withhold("no_channel")
    zone = ZoneInfo(preferences.time_zone) if preferences.time_zone else zone
    wait = next_allowed(preferences.only_within, preferences.quiet_hours, now, zone)
    return wait or Reach(channel, address)


def inside(window: Window, moment: time) -> bool:
    if window.starts < window.ends:
        return window.starts <= moment < window.ends
    return moment >= window.starts or moment < window.ends  # past midnight


def allowed(only_within: Window | None, quiet: Window | None, at: datetime, zone: ZoneInfo) -> bool:
    local = at.astimezone(zone).time()
    if only_within is not None and not inside(only_within, local):
        return False
    return quiet is None or not inside(quiet, local)


def next_allowed(
    only_within: Window | None, quiet: Window | None, now: datetime, zone: ZoneInfo
) -> Wait | None:
    """None when contact is allowed now; else the first moment it is, and which limit held
    it back. The one window contact is limited to is a safeguard and wins over quiet hours
    when the two leave no time at all."""
    if allowed(only_within, quiet, now, zone):
        return None
    because: Literal["quiet_hours", "contact_window"] = (
        "contact_window"
        if only_within is not None and not allowed(only_within, None, now, zone)
        else "quiet_hours"
    )
    boundaries = [w.starts for w in (only_within,) if w] + [w.ends for w in (quiet,) if w]
    today = now.astimezone(zone).date()
    for limits in ((only_within, quiet), (only_within, None)):
        candidates = sorted(
            moment
            for day in range(-1, 3)
            for boundary in boundaries
            if (moment := _at(today + timedelta(days=day), boundary, zone)) > now
        )
        for moment in candidates:
            if allowed(*limits, moment, zone):
                return Wait(moment, because)
    return Wait(now + timedelta(days=1), because)  # (windows that never open: try tomorrow)


def _at(day: date, moment: time, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as an instant. (A time the clocks skip, on the day daylight
    saving starts, comes out as the moment just after the change.)"""
    return datetime.combine(day, moment, zone).astimezone(UTC)
