"""iCalendar (RFC 5545) files of a client's or a supporter's sessions, with ``icalendar``.

Events say what kind of session and by which method, never who or what about:
a calendar file ends up on phones and in shared calendars.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar import Event as CalendarEvent

from contracts.records import CaseSchedule, GroupSession, SupporterSupervision

KIND = {
    "initial_meeting": "Peer support: first meeting",
    "regular": "Peer support session",
    "extra": "Peer support session",
    "supervision": "Supervision",
    "team_debrief": "Team debrief",
    "group": "Group peer support",
}
STATUS = {"proposed": "TENTATIVE", "cancelled": "CANCELLED"}


def feed(
    name: str,
    zone: ZoneInfo,
    stamp: datetime,
    schedules: Iterable[CaseSchedule] = (),
    supervision: SupporterSupervision | None = None,
    groups: Iterable[GroupSession] = (),
) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Alongside//peer support//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", zone.key)
    for schedule in schedules:
        for session in schedule.sessions:
            calendar.add_component(
                _event(
                    session.session_id,
                    KIND[session.kind],
                    session.start,
                    session.end,
                    zone,
                    stamp,
                    method=session.method.value,
                    status=session.status,
                )
            )
    for held in supervision.sessions if supervision else ():
        end = held.start + timedelta(hours=1)
        calendar.add_component(
            _event(held.session_id, KIND[held.kind], held.start, end, zone, stamp)
        )
    for group in groups:
        calendar.add_component(
            _event(
                group.group_id,
                KIND["group"],
                group.start,
                group.end,
                zone,
                stamp,
                method=group.method.value,
            )
        )
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


def _event(
    uid: str,
    summary: str,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    stamp: datetime,
    method: str | None = None,
    status: str = "booked",
) -> CalendarEvent:
    event = CalendarEvent()
    event.add("uid", f"{uid}@alongside")
    event.add("summary", f"{summary} ({method.replace('_', ' ')})" if method else summary)
    event.add("dtstart", start.astimezone(zone))
    event.add("dtend", end.astimezone(zone))
    event.add("dtstamp", stamp)
    event.add("status", STATUS.get(status, "CONFIRMED"))
    return event
