"""One email, composed: plain text, and with a meeting an iCalendar invitation (RFC 5546).

Composing is pure: the Date header comes from ``sent_at``, never from the wall clock, and the
Message-ID from our own id, so a retried send is the same message to the receiving server
and to the person's mail client (it threads and deduplicates on that id).

An invitation says what kind of meeting it is and when, never who or what about: it ends
up in shared calendars. So the organiser carries no name, only the sending address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from icalendar import Calendar, Timezone, vCalAddress
from icalendar import Event as CalendarEvent

PRODID = "-//Alongside//peer support//EN"
STATUS = {"REQUEST": "CONFIRMED", "CANCEL": "CANCELLED"}
# Letters, digits, - and _: safe unquoted on the left of a Message-ID's @ and in a filename.
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class CalendarInvite:
    uid: str  # e.g. "m1-case7@alongside": the same for a meeting's request and its cancel
    method: Literal["REQUEST", "CANCEL"]
    sequence: int  # higher on each change, so a client replaces what it holds
    start: datetime  # aware
    end: datetime  # aware
    summary: str  # the kind of meeting only, never a name or the scheme
    time_zone: str  # IANA, e.g. "Pacific/Auckland"
    stamp: datetime  # aware; DTSTAMP


@dataclass(frozen=True)
class Outgoing:
    message_id: str  # letters, digits, - and _; the same on every attempt
    to_address: str
    from_address: str
    from_name: str
    subject: str
    text: str  # the plain-text body
    sent_at: datetime  # aware; the Date header
    unsubscribe_url: str | None = None  # RFC 8058 one-click
    invitation: CalendarInvite | None = None


def compose(outgoing: Outgoing) -> EmailMessage:
    """The message as it is sent: text/plain; with an invitation, multipart/mixed holding
    multipart/alternative (text/plain, then text/calendar with its method) and the same
    calendar as ``invite.ics`` for clients that ignore the inline part."""
    if not _MESSAGE_ID.match(outgoing.message_id):
        raise ValueError("message_id must be letters, digits, - or _")
    _aware("sent_at", outgoing.sent_at)
    domain = outgoing.from_address.rpartition("@")[2]
    if not domain:
        raise ValueError("from_address has no domain")

    message = EmailMessage(policy=SMTP)
    message["Message-ID"] = f"<{outgoing.message_id}@{domain}>"
    message["Date"] = format_datetime(outgoing.sent_at)
    message["From"] = str(Address(outgoing.from_name, addr_spec=outgoing.from_address))
    message["To"] = outgoing.to_address
    message["Subject"] = outgoing.subject
    # RFC 3834: an automatic message, so auto-responders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    if outgoing.unsubscribe_url is not None:
        # RFC 8058: the mail client POSTs to the URL itself, without opening a page.
        message["List-Unsubscribe"] = f"<{outgoing.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(outgoing.text)

    if outgoing.invitation is not None:
        invite = outgoing.invitation
        ics = invitation_ics(invite, outgoing.from_address, outgoing.to_address)
        message.add_alternative(
            ics.decode("utf-8"), subtype="calendar", params={"method": invite.method}
        )
        message.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
    return message


def invitation_ics(invite: CalendarInvite, organiser: str, attendee: str) -> bytes:
    """A VCALENDAR with its METHOD and one VEVENT, the zone's VTIMEZONE included so that
    clients without the IANA database place the meeting right."""
    for name in ("start", "end", "stamp"):
        _aware(name, getattr(invite, name))
    zone = ZoneInfo(invite.time_zone)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", invite.method)

    event = CalendarEvent()
    event.add("uid", invite.uid)
    event.add("sequence", invite.sequence)
    event.add("dtstart", invite.start.astimezone(zone))
    event.add("dtend", invite.end.astimezone(zone))
    # RFC 5545 wants DTSTAMP in UTC.
    event.add("dtstamp", invite.stamp.astimezone(UTC))
    event.add("summary", invite.summary)
    event.add("status", STATUS[invite.method])
    event.add("organizer", vCalAddress(f"mailto:{organiser}"))
    guest = vCalAddress(f"mailto:{attendee}")
    # Nothing to answer: the meeting is arranged with the service, not by replying.
    guest.params["RSVP"] = "FALSE"
    event.add("attendee", guest)
    calendar.add_component(_timezone(zone.key, invite.start.year))
    calendar.add_component(event)
    return bytes(calendar.to_ical())


@lru_cache(maxsize=64)
def _timezone(key: str, year: int) -> Timezone:
    """The zone's VTIMEZONE around the meeting's year: its transitions from the year before
    to two years on, not 1970 to 2038 (what a calendar adds by default, 8 ms to make and
    hundreds of lines). Made once per zone and year."""
    return Timezone.from_tzid(key, first_date=date(year - 1, 1, 1), last_date=date(year + 2, 1, 1))


def _aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
