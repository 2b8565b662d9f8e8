"""Scheduling over a real nats-server: from an active match to sessions within the boundaries."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

from icalendar import Calendar
from nats.aio.client import Client

from alongside import services
from alongside.calendars import calendar_for
from alongside.client import AlongsideClient
from contracts.intake import (
    CLIENT_PARTY_ID,
    Contact,
    FamilyOrFriend,
    GiveConsent,
    Method,
    NameSupportPerson,
    Stage,
    SupporterChanges,
    UpdateSupporter,
    WithdrawConsent,
)
from contracts.matching import AcceptProposal, ChangeSupporter, ResumeMatch
from contracts.replies import CommandRejected
from contracts.scheduling import (
    BookSession,
    CancelSession,
    ConfigureScheduling,
    ConfirmMeeting,
    CreateGroupSession,
    ExtendService,
    GoAhead,
    JoinGroupSession,
    ProposeMeetingTime,
    RecordAttendance,
    RecordFrequencyAgreement,
    RecordSupervisionAttendance,
    RescheduleSession,
    SchedulingPolicy,
)
from runtime.clock import SYSTEM, Clock, ManualClock
from runtime.settings import Settings
from runtime.vault import Vault
from services.scheduling import sweeps
from services.scheduling.gathering import SchedulingDeps
from tests.conftest import Start
from tests.support import (
    AUCKLAND,
    accepted,
    eligible,
    event_where,
    holds,
    intake,
    org_today,
    seen,
    supporter,
    wait_for,
)

PAUSED = (
    "case_id",
    "the match is paused until a coordinator reviews it (its supporter became "
    "ineligible): no meeting or session is arranged, booked or moved meanwhile",
)


def soon(clock: Clock, seconds: float) -> datetime:
    return clock() + timedelta(seconds=seconds)


async def active_match(client: AlongsideClient, org: str, clock: Clock, case_id: str = "c1") -> str:
    """A client matched with a supporter, every party consented: the match is active."""
    await supporter(client, org, f"s-{case_id}", ["sm"], cap=2, today=org_today(clock))
    await eligible(client, org, 1)
    await accepted(client, org, intake(case_id, ["sm"]))
    [proposed] = await wait_for(client, org, "MatchProposed")
    chosen = proposed.data["proposals"][0]["supporter_id"]
    await accepted(client, org, AcceptProposal(case_id=case_id, supporter_id=chosen))
    await wait_for(client, org, "SupportPersonNamed")
    for party in (CLIENT_PARTY_ID, "respondent"):
        await accepted(
            client,
            org,
            GiveConsent(
                case_id=case_id,
                party_id=party,
                stages=[Stage.ENTRY],
                given_on=org_today(clock),
            ),
        )
    await wait_for(client, org, "MatchActivated")
    return str(chosen)


async def after_meeting(
    client: AlongsideClient, org: str, clock: Clock, case_id: str = "c1", first_in_weeks: int = 1
) -> list[Any]:
    """The initial meeting, moved to a moment from now, confirmed by both and held; then the
    client goes ahead, weekly sessions starting ``first_in_weeks`` after the meeting."""
    [offered] = await wait_for(client, org, "InitialMeetingProposed")
    assert offered.data["proposed_by"] == "scheduling"
    start = soon(clock, 2)
    await accepted(client, org, ProposeMeetingTime(case_id=case_id, by="client", start=start))
    await accepted(client, org, ConfirmMeeting(case_id=case_id, by="supporter"))
    [booked] = await wait_for(client, org, "SessionBooked")
    await clock.sleep_until(start + timedelta(seconds=0.2))
    meeting = booked.data["session_id"]
    await accepted(
        client, org, RecordAttendance(case_id=case_id, session_id=meeting, outcome="completed")
    )
    first = datetime.fromisoformat(booked.data["start"]) + timedelta(weeks=first_in_weeks)
    await accepted(client, org, GoAhead(case_id=case_id, first_session=first))
    [scheduled] = await wait_for(client, org, "SessionsScheduled")
    return [offered, booked, scheduled]


async def test_an_active_match_gets_an_initial_meeting_then_weekly_sessions_to_the_funded_end(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    await accepted(client, org, ConfigureScheduling(policy=SchedulingPolicy(funded_weeks=8)))
    chosen = await active_match(client, org, clock)
    offered, booked, scheduled = await after_meeting(client, org, clock)

    # Offered at a time both are free, at least the lead time ahead, by a method both accept.
    first_offer = datetime.fromisoformat(offered.data["start"])
    assert first_offer >= clock() + timedelta(hours=47)
    assert offered.data["supporter_id"] == chosen
    assert offered.data["method"] == Method.PHONE
    assert booked.data["kind"] == "initial_meeting"
    sessions = scheduled.data["session_ids"]
    assert len(sessions) == 8  # one a week for the 8 funded weeks
    meeting_day = datetime.fromisoformat(booked.data["start"]).date()
    # The service ends the day after the last funded session.
    assert scheduled.data["service_ends_on"] == str(meeting_day + timedelta(weeks=8, days=1))
    assert scheduled.data["time_zone"] == "Pacific/Auckland"

    # The client's calendar: the meeting and every session, in the organisation's zone, no names.
    js = client.nc.jetstream()
    vault = Vault.of(js, Settings())
    ics = await calendar_for(js, org, vault, case="c1")
    events = Calendar.from_ical(ics).walk("VEVENT")
    # The meeting at the time first offered stays in the file, marked cancelled.
    assert sorted(str(e["status"]) for e in events) == ["CANCELLED"] + ["CONFIRMED"] * (1 + 8)
    assert {e.decoded("dtstart").tzinfo.key for e in events} == {"Pacific/Auckland"}
    assert b"client c1" not in ics  # the sample client's display name
    supporter_ics = await calendar_for(js, org, vault, supporter=chosen)
    assert len(Calendar.from_ical(supporter_ics).walk("VEVENT")) == 1 + 1 + 8 + 2  # supervision


async def test_the_organisation_extends_the_service_then_it_ends_and_frees_the_slot(
    running: services.Running,
    client: AlongsideClient,
    nc: Client,
    org: str,
    clock: ManualClock,
) -> None:
    await accepted(client, org, ConfigureScheduling(policy=SchedulingPolicy(funded_weeks=4)))
    chosen = await active_match(client, org, clock)
    *_, scheduled = await after_meeting(client, org, clock)
    ends_on = date.fromisoformat(scheduled.data["service_ends_on"])

    await accepted(client, org, ExtendService(case_id="c1", until=ends_on + timedelta(weeks=2)))
    [extended] = await wait_for(client, org, "ServiceExtended")
    assert len(extended.data["session_ids"]) == 2
    weekly = [datetime.fromisoformat(start) for start in extended.data["starts"]]
    # A week apart in local time (an hour more or less across a daylight-saving change).
    assert abs(weekly[1] - weekly[0] - timedelta(weeks=1)) <= timedelta(hours=1)
    assert extended.data["service_ends_on"] == str(ends_on + timedelta(weeks=2))
    shorter = await client.submit(org, ExtendService(case_id="c1", until=ends_on))
    assert isinstance(shorter, CommandRejected)
    assert shorter.errors[0].field == "data.until"

    deps = running.deps["scheduling"]
    assert isinstance(deps, SchedulingDeps)
    assert await sweeps.end_services(deps, clock()) == 0  # not over yet
    later = clock() + timedelta(weeks=8)
    assert await sweeps.end_services(deps, later) >= 1
    [ended] = await wait_for(client, org, "ServiceEnded")
    assert ended.data["ended_on"] == str(ends_on + timedelta(weeks=2))
    # Matching ends the match and the supporter's slot is free again.
    [match_ended] = await wait_for(client, org, "MatchEnded")
    assert match_ended.data == {
        "case_id": "c1",
        "supporter_id": chosen,
        "reason": "service_completed",
    }
    assert await holds(nc, org, chosen) == {}


async def test_every_boundary_refusal_names_the_rule_and_its_reason(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    await active_match(client, org, clock)
    # Weekly sessions from three weeks on: in eight days' time, no session is within a week.
    *_, scheduled = await after_meeting(client, org, clock, first_in_weeks=3)
    tomorrow = (clock().astimezone(AUCKLAND) + timedelta(days=8)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )

    def book(**changes: Any) -> BookSession:
        fields = {"case_id": "c1", "start": tomorrow, "minutes": 60, "method": Method.PHONE}
        return BookSession(**{**fields, **changes})

    cases = [
        (book(minutes=30), "too-short"),
        (book(method=Method.HOME_VISIT), "method-not-agreed"),
        (book(purposes=["legal_advice"]), "outside-peer-role"),
        (book(start=soon(clock, 200 * 24 * 3600)), "outside-funded-period"),
    ]
    for command, rule in cases:
        reply = await client.submit(org, command)
        assert isinstance(reply, CommandRejected), command
        assert f"rules.boundaries.{rule}" in [e.field for e in reply.errors]
        assert all(e.reason for e in reply.errors)

    # A second session within a week: refused until both sides' agreement is on record.
    await accepted(client, org, book())
    twice = await client.submit(org, book(start=tomorrow + timedelta(hours=3)))
    assert isinstance(twice, CommandRejected)
    assert twice.errors[0].field == "rules.boundaries.more-than-weekly-without-agreement"
    await accepted(client, org, RecordFrequencyAgreement(case_id="c1", sessions_per_week=2))
    await accepted(client, org, book(start=tomorrow + timedelta(hours=3)))

    # Moving a session is judged too: a third that week is more than the two agreed.
    [*_, extra] = await wait_for(client, org, "SessionBooked", 3)
    moved = await client.submit(
        org,
        RescheduleSession(
            case_id="c1",
            session_id=scheduled.data["session_ids"][0],
            start=tomorrow + timedelta(hours=6),
        ),
    )
    assert isinstance(moved, CommandRejected)
    assert moved.errors[0].field == "rules.boundaries.more-than-weekly-without-agreement"
    await accepted(
        client,
        org,
        RescheduleSession(
            case_id="c1",
            session_id=extra.data["session_id"],
            start=tomorrow + timedelta(hours=6),
        ),
    )
    [rescheduled] = await wait_for(client, org, "SessionRescheduled")
    assert datetime.fromisoformat(rescheduled.data["start"]) == tomorrow + timedelta(hours=6)


async def test_a_missed_first_meeting_is_arranged_again_and_home_visits_stay_unsafe(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    both = [Method.HOME_VISIT, Method.PHONE]
    await supporter(client, org, "s1", ["sm"], methods=both, today=org_today(clock))
    await eligible(client, org, 1)
    unsafe_at_home = intake("c1", ["sm"])
    await accepted(
        client,
        org,
        unsafe_at_home.model_copy(
            update={
                "client": (
                    unsafe_at_home.client.model_copy(
                        update={"methods": both, "safety_concerns": ["no_home_visits"]}
                    )
                )
            }
        ),
    )
    [proposed] = await wait_for(client, org, "MatchProposed")
    assert [p["supporter_id"] for p in proposed.data["proposals"]] == ["s1"]
    await accepted(client, org, AcceptProposal(case_id="c1", supporter_id="s1"))
    await wait_for(client, org, "SupportPersonNamed")
    for party in (CLIENT_PARTY_ID, "respondent"):
        await accepted(
            client,
            org,
            GiveConsent(
                case_id="c1",
                party_id=party,
                stages=[Stage.ENTRY],
                given_on=org_today(clock),
            ),
        )
    [offered] = await wait_for(client, org, "InitialMeetingProposed")
    assert offered.data["method"] == Method.PHONE  # the client's first method is not safe

    # The client does not come: the meeting is arranged again, then held.
    for outcome in ("client_no_show", "completed"):
        start = soon(clock, 2)
        await accepted(client, org, ProposeMeetingTime(case_id="c1", by="client", start=start))
        await accepted(client, org, ConfirmMeeting(case_id="c1", by="supporter"))
        booked = await wait_for(client, org, "SessionBooked", 2 if outcome == "completed" else 1)
        await clock.sleep_until(start + timedelta(seconds=0.2))
        await accepted(
            client,
            org,
            RecordAttendance(
                case_id="c1",
                session_id=booked[-1].data["session_id"],
                outcome=outcome,
            ),
        )
        if outcome == "client_no_show":
            refused = await client.submit(org, GoAhead(case_id="c1"))
            assert isinstance(refused, CommandRejected)  # not until a meeting took place
    await accepted(client, org, GoAhead(case_id="c1"))
    attended = await wait_for(client, org, "SessionAttended", 2)
    assert [e.data["outcome"] for e in attended] == ["client_no_show", "completed"]

    # Both agree to meet more often, so that only the safety rule is left to refuse it.
    await accepted(client, org, RecordFrequencyAgreement(case_id="c1", sessions_per_week=2))
    home = await client.submit(
        org,
        BookSession(case_id="c1", start=soon(clock, 86400), minutes=60, method=Method.HOME_VISIT),
    )
    assert isinstance(home, CommandRejected)
    assert [e.field for e in home.errors] == ["rules.boundaries.home-visit-not-safe"]


async def test_withdrawn_consent_and_a_change_of_supporter_cancel_future_sessions_at_once(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    await active_match(client, org, clock)
    *_, scheduled = await after_meeting(client, org, clock)
    future = set(scheduled.data["session_ids"])

    await accepted(
        client,
        org,
        WithdrawConsent(case_id="c1", party_id="respondent", withdrawn_on=org_today(clock)),
    )
    cancelled = await wait_for(client, org, "SessionCancelled", len(future))
    assert {e.data["session_id"] for e in cancelled} == future
    assert {e.data["reason"] for e in cancelled} == {"consent_not_active"}
    # And nothing new can be booked while consent is not active.
    reply = await client.submit(
        org, BookSession(case_id="c1", start=soon(clock, 86400), minutes=60, method=Method.PHONE)
    )
    assert isinstance(reply, CommandRejected)
    assert "rules.boundaries.consent-not-active" in [e.field for e in reply.errors]

    # The respondent consents again: the same sessions are booked again.
    await accepted(
        client,
        org,
        GiveConsent(
            case_id="c1", party_id="respondent", stages=[Stage.ENTRY], given_on=org_today(clock)
        ),
    )
    [resumed] = await wait_for(client, org, "SessionsResumed")
    assert set(resumed.data["session_ids"]) == future


async def test_a_change_of_supporter_cancels_the_sessions_with_the_reason(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    await active_match(client, org, clock)
    *_, scheduled = await after_meeting(client, org, clock)
    await accepted(client, org, ChangeSupporter(case_id="c1"))
    cancelled = await wait_for(client, org, "SessionCancelled", len(scheduled.data["session_ids"]))
    assert {e.data["reason"] for e in cancelled} == {"supporter_changed"}
    assert len(cancelled) == len(scheduled.data["session_ids"])


async def test_a_reminder_is_delivered_even_while_the_service_is_down(
    start: Start, client: AlongsideClient, org: str
) -> None:
    clock = SYSTEM  # the server's clock fires the reminder
    running = await start(clock=clock)
    try:
        await accepted(client, org, ConfigureScheduling(policy=SchedulingPolicy(reminder_hours=1)))
        await active_match(client, org, clock)
        await after_meeting(client, org, clock)
        at = soon(clock, 3600 + 3)  # its reminder is due in three seconds
        # An hour after the first meeting: more than weekly, so both agree to it first.
        await accepted(client, org, RecordFrequencyAgreement(case_id="c1", sessions_per_week=2))
        await accepted(
            client, org, BookSession(case_id="c1", start=at, minutes=60, method=Method.PHONE)
        )
        [*_, booked] = await wait_for(client, org, "SessionBooked", 2)
    finally:
        await running.stop()
    # No service is running now: the server publishes the reminder from its stored schedule.
    [reminder] = await wait_for(client, org, "SessionReminderDue", timeout=8)
    assert reminder.data["session_id"] == booked.data["session_id"]
    assert abs(datetime.fromisoformat(reminder.data["start"]) - at) < timedelta(seconds=1)


async def test_a_cancelled_session_sends_no_reminder(
    start: Start, client: AlongsideClient, org: str
) -> None:
    clock = SYSTEM  # the server's clock would fire the reminder
    await start(clock=clock)
    await accepted(client, org, ConfigureScheduling(policy=SchedulingPolicy(reminder_hours=1)))
    await active_match(client, org, clock)
    await after_meeting(client, org, clock)
    at = soon(clock, 3600 + 2)
    await accepted(client, org, RecordFrequencyAgreement(case_id="c1", sessions_per_week=2))
    await accepted(
        client, org, BookSession(case_id="c1", start=at, minutes=60, method=Method.PHONE)
    )
    [*_, booked] = await wait_for(client, org, "SessionBooked", 2)
    await accepted(
        client, org, CancelSession(case_id="c1", session_id=booked.data["session_id"], by="client")
    )
    await asyncio.sleep(3)
    assert await seen(client, org, "SessionReminderDue") == []
    # The time is free again: booking it anew gives a new session.
    again = await accepted(
        client, org, BookSession(case_id="c1", start=at, minutes=60, method=Method.PHONE)
    )
    [*_, rebooked] = await wait_for(client, org, "SessionBooked", 3)
    assert rebooked.id in again.event_ids
    assert rebooked.data["session_id"] != booked.data["session_id"]


async def test_a_supervision_lapse_keeps_a_supporter_from_new_matches_until_attended(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    await supporter(client, org, "s1", ["sm"], supervised_days_ago=60, today=org_today(clock))
    decided = await wait_for(client, org, "SupporterEligibilityDecided")
    assert not any(e.data["eligible"] for e in decided)  # supervision is overdue
    await accepted(client, org, intake("c1", ["sm"]))
    [waiting] = await wait_for(client, org, "ClientWaitlisted")
    assert waiting.data["constraint"] == "eligible-with-free-slot"

    # Supervision is booked all the same; attending it restores eligibility.
    planned = await wait_for(client, org, "SupervisionScheduled", 2)
    assert {e.data["kind"] for e in planned} == {"supervision", "team_debrief"}
    supervision = next(e for e in planned if e.data["kind"] == "supervision")
    attend = RecordSupervisionAttendance(
        supporter_id="s1", session_id=supervision.data["session_id"]
    )
    # Not before it has started: evidence counts once it has happened.
    early = await client.submit(org, attend)
    assert isinstance(early, CommandRejected)
    assert early.errors[0].field == "data.session_id"
    assert "has not started yet" in early.errors[0].reason
    await clock.sleep_until(datetime.fromisoformat(supervision.data["start"]) + timedelta(hours=1))
    await accepted(client, org, attend)
    [attended] = await wait_for(client, org, "SupervisionAttended")
    assert attended.data["attended_on"] == str(org_today(clock))  # the organisation's today
    [proposed] = await wait_for(client, org, "MatchProposed")
    assert proposed.data["case_id"] == "c1"
    assert [p["supporter_id"] for p in proposed.data["proposals"]] == ["s1"]


async def test_a_group_session_takes_consented_clients_up_to_its_capacity(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    chosen = await active_match(client, org, clock, "c1")
    await accepted(client, org, intake("c2", ["sm"]))
    await accepted(client, org, intake("c3", ["sm"]))  # no consent given for c3
    aunt = FamilyOrFriend(kind="family", display_name="Aunt", contact=Contact(phone="+64 21 555"))
    await accepted(client, org, NameSupportPerson(case_id="c2", support_person=aunt))
    for party in (CLIENT_PARTY_ID, "respondent"):
        await accepted(
            client,
            org,
            GiveConsent(
                case_id="c2",
                party_id=party,
                stages=[Stage.ENTRY],
                given_on=org_today(clock),
            ),
        )
    await event_where(
        client, org, "ConsentDecided", lambda d: (d["case_id"], d["status"]) == ("c2", "active")
    )
    await accepted(
        client,
        org,
        CreateGroupSession(
            group_id="g1",
            facilitator_id=chosen,
            start=soon(clock, 86400),
            minutes=90,
            method=Method.PHONE,
            capacity=2,
        ),
    )

    refused = await client.submit(org, JoinGroupSession(group_id="g1", case_id="c3"))
    assert isinstance(refused, CommandRejected)
    assert "rules.boundaries.consent-not-active" in [e.field for e in refused.errors]
    await accepted(client, org, JoinGroupSession(group_id="g1", case_id="c1"))
    for _ in range(50):  # c2's consent decision may still be on its way
        reply = await client.submit(org, JoinGroupSession(group_id="g1", case_id="c2"))
        if not isinstance(reply, CommandRejected):
            break
        await asyncio.sleep(0.1)
    full = await client.submit(org, JoinGroupSession(group_id="g1", case_id="c3"))
    assert isinstance(full, CommandRejected)
    assert (full.errors[0].field, full.errors[0].reason) == (
        "data.group_id",
        "the group session is full (2 places)",
    )
    joined = await wait_for(client, org, "GroupParticipantJoined", 2)
    assert [(e.data["case_id"], e.data["places_left"]) for e in joined] == [("c1", 1), ("c2", 0)]


async def test_an_ineligible_supporters_sessions_wait_for_a_coordinators_review(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    chosen = await active_match(client, org, clock)
    *_, scheduled = await after_meeting(client, org, clock)
    future = set(scheduled.data["session_ids"])
    await accepted(client, org, RecordFrequencyAgreement(case_id="c1", sessions_per_week=2))
    extra = BookSession(case_id="c1", start=soon(clock, 2 * 86400), minutes=60, method=Method.PHONE)

    # Suspended: the rules decide them ineligible, matching pauses the match and scheduling
    # cancels every future session.
    await accepted(
        client, org, UpdateSupporter(supporter_id=chosen, changes=SupporterChanges(suspended=True))
    )
    [paused] = await wait_for(client, org, "MatchPaused")
    assert paused.data == {
        "case_id": "c1",
        "supporter_id": chosen,
        "reason": "supporter_ineligible",
    }
    cancelled = await wait_for(client, org, "SessionCancelled", len(future))
    assert {e.data["session_id"] for e in cancelled} == future
    assert {e.data["reason"] for e in cancelled} == {"supporter_ineligible"}
    refused = await client.submit(org, extra)
    assert isinstance(refused, CommandRejected)
    assert [(e.field, e.reason) for e in refused.errors] == [
        ("rules.eligibility.suspended", "The supporter is suspended."),
        PAUSED,
    ]

    # Eligible again: the sessions still wait for the review.
    await accepted(
        client, org, UpdateSupporter(supporter_id=chosen, changes=SupporterChanges(suspended=False))
    )
    await event_where(
        client,
        org,
        "SupporterEligibilityDecided",
        lambda d: d["supporter_id"] == chosen and d["eligible"],
    )
    refused = await client.submit(org, extra)
    assert isinstance(refused, CommandRejected)
    assert [(e.field, e.reason) for e in refused.errors] == [PAUSED]

    # The coordinator's review: the same sessions are booked again, and only by it.
    await accepted(client, org, ResumeMatch(case_id="c1"))
    [resumed_match] = await wait_for(client, org, "MatchResumed")
    [resumed] = await wait_for(client, org, "SessionsResumed")
    assert set(resumed.data["session_ids"]) == future
    assert resumed.causationid == resumed_match.id
    await accepted(client, org, extra)
    assert len(await seen(client, org, "SessionsResumed")) == 1
