"""The notifications service's decisions, without a broker: who may be reached and when,
what each event tells whom, a message's life, personal links and the messages' words."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts.intake import Contact, Method
from contracts.matching import MatchProposed, ProposedSupporter
from contracts.notifications import Channel, ChannelSettings, ContactPreferences, Window
from contracts.records import CaseSchedule, PersonalLink, Session
from contracts.scheduling import SessionCancelled, SessionRescheduled
from services.notifications import deliveries, links, plans, render
from services.notifications.reach import Reach, Wait, Withhold, next_allowed, route
from services.notifications.transport import Outcome, Result

AUCKLAND = ZoneInfo("Pacific/Auckland")
CHANNELS = ChannelSettings(
    from_address="support@peers.example.org",
    webhook_url="json://127.0.0.1:9/sms",
    pages_url="http://127.0.0.1:8000",
)
REACHABLE = Contact(email="rua@example.org", phone="+64 21 555 0101", may_contact=True)
NOON = datetime(2026, 12, 8, 12, 0, tzinfo=AUCKLAND)


def reach(
    preferences: ContactPreferences = ContactPreferences(),  # noqa: B008 (frozen, shared)
    contact: Contact | None = REACHABLE,
    essential: bool = True,
    now: datetime = NOON,
) -> object:
    return route(essential, preferences, contact, CHANNELS, True, now, AUCKLAND)


def test_safe_contact_comes_before_every_wish() -> None:
    assert reach(ContactPreferences(do_not_contact=True)) == Withhold("do_not_contact")
    assert reach(contact=None) == Withhold("no_contact")
    unconsented = REACHABLE.model_copy(update={"may_contact": False})
    assert reach(contact=unconsented) == Withhold("no_consent_to_contact")
    assert reach(ContactPreferences(essential_only=True), essential=False) == Withhold(
        "not_essential"
    )
    assert reach() == Reach(Channel.EMAIL, "rua@example.org")
    # Limited to text messages: the phone, whatever they chose before.
    limited = ContactPreferences(channel=Channel.EMAIL, only_channel=Channel.SMS)
    assert reach(limited) == Reach(Channel.SMS, "+64 21 555 0101")
    no_phone = REACHABLE.model_copy(update={"phone": None})
    assert reach(limited, contact=no_phone) == Withhold("no_contact")


def test_quiet_hours_hold_a_message_until_they_end_in_the_persons_zone() -> None:
    quiet = ContactPreferences(quiet_hours=Window(starts=time(21), ends=time(8)))
    late = datetime(2026, 12, 8, 23, 30, tzinfo=AUCKLAND)
    waited = reach(quiet, now=late)
    assert waited == Wait(datetime(2026, 12, 9, 8, 0, tzinfo=AUCKLAND), "quiet_hours")
    assert isinstance(reach(quiet, now=NOON), Reach)
    # Their own zone, not the organisation's: 23:30 in Auckland is 10:30 in London.
    abroad = quiet.model_copy(update={"time_zone": "Europe/London"})
    assert isinstance(reach(abroad, now=late), Reach)


def test_one_window_of_contact_is_a_safeguard_and_wins_over_quiet_hours() -> None:
    window = Window(starts=time(10), ends=time(11))
    only = ContactPreferences(only_within=window, quiet_hours=Window(starts=time(9), ends=time(12)))
    early = datetime(2026, 12, 8, 7, 0, tzinfo=AUCKLAND)
    waited = next_allowed(only.only_within, only.quiet_hours, early.astimezone(UTC), AUCKLAND)
    assert waited is not None
    assert waited.because == "contact_window"
    assert waited.until == datetime(2026, 12, 8, 10, 0, tzinfo=AUCKLAND)


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        # The night the clocks go forward (27 Sep 2026, 02:00 becomes 03:00).
        (
            datetime(2026, 9, 27, 1, 30, tzinfo=AUCKLAND),
            datetime(2026, 9, 27, 3, 0, tzinfo=AUCKLAND),
        ),
        # The night they go back (5 Apr 2026, 03:00 becomes 02:00).
        (
            datetime(2026, 4, 5, 1, 30, tzinfo=AUCKLAND),
            datetime(2026, 4, 5, 2, 30, tzinfo=AUCKLAND),
        ),
    ],
)
def test_a_window_across_a_daylight_saving_change_opens_at_the_right_instant(
    now: datetime, opens: datetime
) -> None:
    quiet = Window(starts=time(1), ends=time(2, 30))
    waited = next_allowed(None, quiet, now.astimezone(UTC), AUCKLAND)
    assert waited is not None
    assert waited.until.astimezone(AUCKLAND).time() >= time(2, 30)
    assert waited.until <= opens + timedelta(hours=1)


def proposed(case_id: str = "c1") -> MatchProposed:
    until = datetime(2026, 12, 10, 9, tzinfo=UTC)
    offer = ProposedSupporter(
        supporter_id="s1", score=1.0, matched_on=["languages"], held_until=until
    )
    return MatchProposed(case_id=case_id, round=1, proposals=[offer])


def test_a_plan_is_one_message_per_cause_and_person_whatever_the_delivery() -> None:
    [first] = plans.proposals(proposed(), "e1", waitlisted=False)
    [again] = plans.proposals(proposed(), "e1", waitlisted=False)
    [other] = plans.proposals(proposed(), "e2", waitlisted=False)
    assert first.message_id == again.message_id != other.message_id
    assert first.about == "proposals_ready"
    assert plans.proposals(proposed(), "e3", waitlisted=True)[0].about == "place_found"
    # A consent request is one per party, support person and stage, however often decided.
    [asked] = plans.consent_requested("c1", "entry", ["respondent"], "peer:s1", "e4")
    [asked_again] = plans.consent_requested("c1", "entry", ["respondent"], "peer:s1", "e5")
    [someone_else] = plans.consent_requested("c1", "entry", ["respondent"], "peer:s2", "e6")
    assert asked.message_id == asked_again.message_id != someone_else.message_id


def schedule() -> CaseSchedule:
    start = datetime(2026, 12, 9, 5, tzinfo=UTC)
    session = Session(
        session_id="m1",
        kind="initial_meeting",
        start=start,
        end=start + timedelta(hours=1),
        method=Method.PHONE,
        status="booked",
    )
    return CaseSchedule(
        case_id="c1", supporter_id="s1", status="going_ahead", sessions=[session], updated_at=start
    )


def test_a_moved_then_cancelled_meeting_keeps_its_uid_with_a_higher_sequence() -> None:
    moved_at, cancelled_at = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC)
    start = datetime(2026, 12, 9, 6, tzinfo=UTC)
    moved = SessionRescheduled(case_id="c1", session_id="m1", start=start, end=start)
    cancelled = SessionCancelled(case_id="c1", session_id="m1", reason="cancelled_by_client")
    told = plans.session_news(moved, schedule(), "e1", moved_at)
    cancel = plans.session_news(cancelled, schedule(), "e2", cancelled_at)
    assert [p.person.kind for p in told] == ["client", "supporter"]
    first, later = told[0].invitation, cancel[0].invitation
    assert first is not None
    assert later is not None
    assert first.uid == later.uid
    assert (first.method, later.method) == ("REQUEST", "CANCEL")
    assert later.sequence > first.sequence
    assert all(p.case_id == "c1" for p in told)


def test_an_erased_clients_cancellations_go_to_the_supporter_only() -> None:
    erased = SessionCancelled(case_id="c1", session_id="m1", reason="client_erased")
    told = plans.session_news(erased, schedule(), "e1", datetime(2026, 12, 8, tzinfo=UTC))
    assert [p.person.kind for p in told] == ["supporter"]


def test_a_check_lapsing_is_told_once_within_the_days_before() -> None:
    today = date(2026, 12, 8)
    assert plans.check_lapsing("s1", today + timedelta(days=40), today, 30) == []
    [soon] = plans.check_lapsing("s1", today + timedelta(days=20), today, 30)
    [again] = plans.check_lapsing("s1", today + timedelta(days=20), today + timedelta(days=1), 30)
    assert soon.message_id == again.message_id


def test_a_message_is_attempted_once_and_backs_off_while_its_channel_is_down() -> None:
    now = datetime(2026, 12, 8, tzinfo=UTC)
    [plan] = plans.proposals(proposed(), "e1", waitlisted=False)
    fresh = deliveries.planned(plan, now)
    started = deliveries.attempt(fresh, Reach(Channel.EMAIL, "x@example.org"), now, "h" * 64)
    assert started is not None
    sending = started.record
    assert (sending.status, sending.attempts) == ("sending", 1)
    # Another replica, or a redelivery, finds it taken.
    assert deliveries.attempt(sending, Reach(Channel.EMAIL, "x@example.org"), now, None) is None
    down = Result(Outcome.RETRY, "connection refused")
    waited = deliveries.outcome(sending, down, 1, now, 3, timedelta(seconds=30))
    assert waited is not None
    assert waited.record.status == "deferred"
    assert waited.record.due_at == now + timedelta(seconds=30)
    # A stale outcome (of an earlier attempt) changes nothing.
    assert (
        deliveries.outcome(waited.record, Result(Outcome.SENT, ""), 1, now, 3, timedelta(1)) is None
    )
    third = sending.model_copy(update={"attempts": 3})
    failed = deliveries.outcome(third, down, 3, now, 3, timedelta(seconds=30))
    assert failed is not None
    assert failed.record.status == "failed"
    bounced = deliveries.outcome(sending, Result(Outcome.BOUNCED, "550"), 1, now, 3, timedelta(1))
    assert bounced is not None
    assert bounced.record.status == "bounced"


def link_for(token_hash: str, ends: datetime) -> PersonalLink:
    [plan] = plans.proposals(proposed(), "e1", waitlisted=False)
    return PersonalLink(
        org="acme",
        link_ref=links.ref_of(token_hash),
        person=plan.person,
        person_key=plan.person.key,
        case_id="c1",
        purpose="choose_supporter",
        expires_at=ends,
        created_at=ends,
    )


def test_a_link_is_random_signed_and_kept_only_as_its_hash() -> None:
    secret = links.secret_of(b"m" * 32)
    ends = datetime(2026, 12, 22, tzinfo=UTC)
    token, token_hash = links.mint(secret, "c=c1", "c1", "choose_supporter", ends)
    other, _ = links.mint(secret, "c=c1", "c1", "choose_supporter", ends)
    assert token != other, "each link is fresh randomness"
    assert links.well_formed(token)
    assert len(token.split(".")[0]) * 6 >= 256  # 256 random bits, base64url
    assert token_hash == links.hash_of(token) != token
    link = link_for(token_hash, ends)
    assert links.signed(secret, token, link)
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    assert not links.signed(secret, tampered, link)
    longer = link.model_copy(update={"expires_at": ends + timedelta(days=1)})
    assert not links.signed(secret, token, longer), "bound to when it ends"
    elsewhere = link.model_copy(update={"case_id": "c2"})
    assert not links.signed(secret, token, elsewhere), "bound to one case"
    assert not links.well_formed(token + "x")


@pytest.mark.parametrize("about", sorted(p.stem for p in render.DEFAULTS.glob("*.txt")))
def test_every_default_message_renders_in_plain_words(about: str) -> None:
    facts = {
        "start": "2026-12-09T05:00:00+00:00",
        "until": "2026-12-10T09:00:00+00:00",
        "kind": "initial_meeting",
        "method": "phone",
        "count": "3",
        "stage": "early_resolution",
        "lapses_on": "2027-01-05",
    }
    words = render.words(
        about, facts, AUCKLAND, "acme", "Peer support", link="http://x/p/t", code="123456"
    )
    for text in (words.subject, words.sms, words.text):
        assert "{" not in text
        assert "_" not in text.replace("http://x/p/t", "")
        assert not re.search(r"\d{4}-\d{2}-\d{2}", text), "dates in words, not ISO"
    assert "acme" not in words.subject.lower()
    assert len(words.sms) <= 160 or about in ("consent_requested", "meeting_proposed")


def test_an_organisations_template_is_used_and_a_broken_one_falls_back(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "acme").mkdir()
    (folder / "acme" / "reminder.txt").write_text(
        "Subject: See you soon\nSMS: See you {{ start }}\n\nKia ora, see you {{ start }}.\n"
    )
    (folder / "acme" / "session_booked.txt").write_text("Subject: {{ broken\n\nbody\n")
    facts = {"start": "2026-12-09T05:00:00+00:00", "kind": "regular", "method": "phone"}
    own = render.words("reminder", facts, AUCKLAND, "acme", "Peer support", folder=folder)
    assert own.subject == "See you soon"
    assert own.text.startswith("Kia ora, see you Wednesday 9 December at 18:00")
    fallback = render.words(
        "session_booked", facts, AUCKLAND, "acme", "Peer support", folder=folder
    )
    assert fallback.subject == "Your session is booked"


def test_a_person_may_tighten_but_never_lift_a_coordinators_safety_limits() -> None:
    from contracts.records import PersonContact
    from services.notifications.handlers import safe

    now = datetime(2026, 12, 8, tzinfo=UTC)
    window = Window(starts=time(10), ends=time(11))
    set_by_coordinator = ContactPreferences(do_not_contact=True, only_within=window)
    wishes, locked = safe(
        PersonContact(person_key="c=c1", updated_at=now), set_by_coordinator, "coordinator"
    )
    assert locked
    record = PersonContact(
        person_key="c=c1", preferences=wishes, safety_by_coordinator=True, updated_at=now
    )
    lifted, still = safe(record, ContactPreferences(channel=Channel.SMS), "person")
    assert still
    assert lifted.do_not_contact
    assert lifted.only_within == window
    assert lifted.channel == Channel.SMS  # their own wishes stand
    # Their own "do not contact", unlocked, they may lift themselves.
    own = PersonContact(
        person_key="c=c1", preferences=ContactPreferences(do_not_contact=True), updated_at=now
    )
    assert safe(own, ContactPreferences(), "person") == (ContactPreferences(), False)
