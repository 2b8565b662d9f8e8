"""A supporter's sessions as a calendar feed (iCalendar, RFC 5545), from what their link
opened. Each event has the UID its emailed invitation has (``<case>-<session>@alongside``),
so a calendar that holds both keeps one event; and it says what kind of session and how,
never who or what about: a calendar ends up on phones and in shared calendars."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar import Event as CalendarEvent

from contracts.notifications import PageSession
from services.console.people_words import METHODS

SUMMARY = {
    "initial_meeting": "Peer support: first meeting",
    "regular": "Peer support session",
    "extra": "Peer support session",
}
STATUS = {"proposed": "TENTATIVE", "cancelled": "CANCELLED"}


def feed(sessions: list[PageSession], zone: ZoneInfo, stamp: datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Alongside//peer support//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Peer support sessions")
    calendar.add("x-wr-timezone", zone.key)
    for session in sessions:
        event = CalendarEvent()
        event.add("uid", f"{session.case_id}-{session.session_id}@alongside")
        summary = SUMMARY.get(session.kind, "Peer support session")
        how = METHODS.get(session.method)
        event.add("summary", f"{summary} ({how})" if how else summary)
        event.add("dtstart", session.start.astimezone(zone))
        event.add("dtend", session.end.astimezone(zone))
        event.add("dtstamp", stamp)
        event.add("status", STATUS.get(session.status, "CONFIRMED"))
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())
