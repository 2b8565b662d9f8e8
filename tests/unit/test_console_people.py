"""People's pages without a broker: what each form may send (only within the link), the
words a person reads, the calendar feed, and the throttle."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts.matching import AcceptProposal
from contracts.notifications import (
    Channel,
    ContactPreferences,
    LinkOpened,
    PageOffer,
    PageSession,
    Person,
    SetContactPreferences,
    Window,
)
from contracts.scheduling import RecordAttendance
from runtime.clock import ManualClock
from services.console import people_words
from services.console.people import session_actions
from services.console.people_calendar import feed
from services.console.people_forms import ACTIONS, NotYours, command_id, preferences_of
from services.console.throttle import RequestsPerMinute

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
TODAY = date(2026, 12, 1)
TOKEN = "a" * 43 + "." + "b" * 22


def opened(**fields: Any) -> LinkOpened:
    person = fields.pop("person", Person(kind="client", case_id="c1"))
    base: dict[str, Any] = {
        "command_id": "x",
        "link_ref": "r",
        "person": person,
        "case_id": "c1",
        "purpose": "choose_supporter",
        "expires_at": NOW + timedelta(days=14),
        "time_zone": "Pacific/Auckland",
    }
    return LinkOpened.model_validate({**base, **fields})


def offer(supporter_id: str) -> PageOffer:
    return PageOffer(
        supporter_id=supporter_id,
        first_name="Mele",
        languages=["sm"],
        methods=["phone"],
        matched_on=["languages"],
        held_until=NOW + timedelta(days=2),
    )


def session(**fields: Any) -> PageSession:
    base: dict[str, Any] = {
        "case_id": "c1",
        "session_id": "m1",
        "kind": "initial_meeting",
        "start": NOW + timedelta(days=2),
        "end": NOW + timedelta(days=2, hours=1),
        "method": "phone",
        "status": "proposed",
        "confirmed": False,
        "with_name": "Rua",
    }
    return PageSession.model_validate({**base, **fields})


def test_a_client_chooses_only_among_those_offered_or_the_one_already_chosen() -> None:
    choose = ACTIONS["choose"].make
    page = opened(match_status="proposed", offers=[offer("s1"), offer("s2")])
    assert choose(page, {"supporter": "s2"}, TOKEN, TODAY) == AcceptProposal(
        case_id="c1", supporter_id="s2"
    )
    with pytest.raises(NotYours):
        choose(page, {"supporter": "s9"}, TOKEN, TODAY)
    # The same form sent again once the choice is made: the same command, answered the same.
    after = opened(match_status="accepted", chosen_id="s2")
    assert choose(after, {"supporter": "s2"}, TOKEN, TODAY).supporter_id == "s2"  # type: ignore[attr-defined]
    # Another person's link, or another purpose, chooses nothing.
    party = opened(person=Person(kind="party", case_id="c1", party_id="p1"), purpose="consent")
    with pytest.raises(NotYours):
        choose(party, {"supporter": "s2"}, TOKEN, TODAY)


def test_consent_needs_something_to_consent_to() -> None:
    with pytest.raises(NotYours):
        ACTIONS["give_consent"].make(opened(purpose="consent"), {}, TOKEN, TODAY)


def test_sessions_are_acted_on_only_if_the_page_listed_them() -> None:
    supporter = Person(kind="supporter", supporter_id="s1")
    page = opened(person=supporter, purpose="schedule", sessions=[session(status="booked")])
    held = ACTIONS["record_attendance"].make(page, {"session": "m1"}, TOKEN, TODAY)
    assert held == RecordAttendance(case_id="c1", session_id="m1", outcome="completed")
    with pytest.raises(NotYours):
        ACTIONS["cancel_session"].make(page, {"session": "other"}, TOKEN, TODAY)
    client = opened(purpose="schedule", sessions=[session(status="booked")])
    with pytest.raises(NotYours):  # a supporter records what was held
        ACTIONS["record_attendance"].make(client, {"session": "m1"}, TOKEN, TODAY)


def test_which_session_forms_a_page_offers_and_when() -> None:
    client = opened(purpose="schedule")
    proposed = session()
    assert [a for a, _ in session_actions(proposed, client, NOW)] == ["confirm_meeting"]
    assert session_actions(session(confirmed=True), client, NOW) == []
    booked = session(status="booked")
    assert [a for a, _ in session_actions(booked, client, NOW)] == ["cancel_session"]
    later = NOW + timedelta(days=3)
    assert session_actions(booked, client, later) == []
    supporter = opened(person=Person(kind="supporter", supporter_id="s1"), purpose="schedule")
    assert [a for a, _ in session_actions(booked, supporter, later)] == ["record_attendance"]


def test_contact_choices_keep_the_limits_a_coordinator_set_for_safety() -> None:
    kept = ContactPreferences(
        only_channel=Channel.EMAIL,
        only_within=Window(starts=time(9), ends=time(17)),
        time_zone="Pacific/Chatham",
    )
    page = opened(preferences=kept)
    form = {"channel": "sms", "quiet_from": "21:00", "quiet_to": "07:30", "essential_only": "yes"}
    chosen = preferences_of(page, form)
    assert chosen == ContactPreferences(
        channel=Channel.SMS,
        quiet_hours=Window(starts=time(21), ends=time(7, 30)),
        essential_only=True,
        only_channel=Channel.EMAIL,
        only_within=Window(starts=time(9), ends=time(17)),
        time_zone="Pacific/Chatham",
    )
    command = ACTIONS["preferences"].make(page, {**form, "do_not_contact": "yes"}, TOKEN, TODAY)
    assert isinstance(command, SetContactPreferences)
    assert command.person == page.person
    assert command.preferences.do_not_contact
    for wrong, said in (
        ({"channel": "pigeon"}, "Choose email or text message."),
        ({"channel": "email", "quiet_from": "21:00"}, "Give both times"),
        ({"channel": "email", "quiet_from": "9", "quiet_to": "x"}, "hours and minutes"),
        ({"channel": "email", "quiet_from": "21:00", "quiet_to": "21:00"}, "different times"),
    ):
        with pytest.raises(NotYours, match=said):
            preferences_of(page, wrong)


def test_a_forms_command_id_is_the_same_for_the_same_form_only() -> None:
    one = command_id("h", "choose", "s1", "n" * 22)
    assert one == command_id("h", "choose", "s1", "n" * 22)
    assert (
        len(
            {
                one,
                command_id("h", "choose", "s2", "n" * 22),
                command_id("h", "choose", "s1", "m" * 22),
            }
        )
        == 3
    )


def test_a_person_reads_words_never_codes() -> None:
    assert people_words.languages(["sm", "en"]) == "Samoan and English"
    assert people_words.languages(["sm", "qq", "zz"]) == "Samoan and 2 other languages"
    assert people_words.methods(["phone", "in_person"]) == "by phone and in person, at a safe place"
    assert people_words.matched_on(["languages", "methods"]) == (
        "speaks your language and can meet the way you asked"
    )
    assert people_words.stage("adjudication") == "the decision stage"
    assert people_words.when(NOW, ZoneInfo("Pacific/Auckland")) == "Tuesday 1 December at 22:00"
    assert "waiting list" in people_words.standing("waitlisted")


def test_the_calendar_feed_has_the_invitations_uids_and_names_nobody() -> None:
    ics = feed([session(with_name="Rua")], ZoneInfo("Pacific/Auckland"), NOW).decode()
    assert "UID:c1-m1@alongside" in ics
    assert "SUMMARY:Peer support: first meeting (by phone)" in ics
    assert "STATUS:TENTATIVE" in ics
    assert "Rua" not in ics


def test_the_throttle_counts_a_minute_per_address() -> None:
    clock = ManualClock(NOW)
    throttle = RequestsPerMinute(clock, 3)
    assert [throttle.wait("a") for _ in range(3)] == [None, None, None]
    assert throttle.wait("a") == timedelta(minutes=1)
    assert throttle.wait("b") is None  # another address counts on its own
    clock.advance(timedelta(seconds=61))
    assert throttle.wait("a") is None
