"""The console's work lists and monthly figures, folded from events: no broker, no clock but
the one each test names."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from contracts.envelope import Event
from contracts.intake import ClientErased, IntakeReceived, Method, Stage, SupporterErased
from contracts.matching import (
    ClientWaitlisted,
    MatchActivated,
    MatchEnded,
    MatchPaused,
    MatchProposed,
    MatchResumed,
    ProposalAccepted,
    ProposalsDeclined,
    ProposedSupporter,
    ServiceRefused,
)
from contracts.rules import (
    ConsentDecided,
    Kind,
    RulesetPublished,
    RulesetRef,
    SupporterEligibilityDecided,
)
from contracts.scheduling import (
    InitialMeetingProposed,
    SchedulingConfigured,
    SchedulingPolicy,
    SessionAttended,
    SessionBooked,
    SessionCancelled,
    SessionRescheduled,
    SessionsScheduled,
    SupervisionAttended,
    SupervisionScheduled,
)
from services.console.overview import Overview
from services.console.overview_month import as_csv

AUCKLAND = ZoneInfo("Pacific/Auckland")
# A Wednesday, 10:00 in Auckland: its week runs from Monday 2 November.
NOW = datetime(2026, 11, 4, 10, 0, tzinfo=AUCKLAND)


def folded(*timed: tuple[Event, datetime]) -> Overview:
    overview = Overview("org-a")
    for event, at in timed:
        overview.apply(event, at)
    return overview


def ruleset(kind: Kind, version: str) -> RulesetRef:
    return RulesetRef(org="org-a", kind=kind, version=version, content_hash="h" * 8)


def received(case_id: str) -> IntakeReceived:
    return IntakeReceived(
        case_id=case_id, scheme="s", stage=Stage.ENTRY, party_ids=["p1"], has_other_support=False
    )


def proposed(case_id: str, *held_until: datetime) -> MatchProposed:
    return MatchProposed(
        case_id=case_id,
        round=1,
        proposals=[
            ProposedSupporter(supporter_id=f"s{n}", score=1.0, matched_on=[], held_until=until)
            for n, until in enumerate(held_until)
        ],
    )


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def test_a_client_waits_until_proposed_and_chooses_until_they_answer() -> None:
    start = NOW - hours(30)
    overview = folded(
        (received("c1"), start),
        (ClientWaitlisted(case_id="c1", constraint="languages"), start),
        (ClientWaitlisted(case_id="c1", constraint="region"), start + hours(5)),
        (received("c2"), start),
        (proposed("c2", NOW + hours(40), NOW + hours(20)), start),
    )

    today = overview.today(NOW, limit=10)
    [waiting] = today.waiting
    # Waitlisted again for another reason: still waiting since the first time.
    assert (waiting.case_id, waiting.constraint, waiting.since) == ("c1", "region", start)
    [choosing] = today.awaiting_choice
    assert choosing.first_hold_ends == NOW + hours(20)

    overview.apply(proposed("c1", NOW + hours(48)), NOW)
    overview.apply(
        ProposalAccepted(case_id="c2", supporter_id="s0", released_supporter_ids=[]), NOW
    )
    after = overview.today(NOW, limit=10)
    assert after.waiting == []
    assert [p.case_id for p in after.awaiting_choice] == ["c1"]


def test_a_paused_match_waits_for_review_until_resumed_or_ended() -> None:
    hour = timedelta(hours=1)
    overview = folded(
        (MatchPaused(case_id="c2", supporter_id="s2"), NOW - 2 * hour),
        (MatchPaused(case_id="c1", supporter_id="s1"), NOW - 3 * hour),
        (MatchPaused(case_id="c3", supporter_id="s3"), NOW - hour),
    )
    today = overview.today(NOW, limit=10)
    assert [(r.case_id, r.supporter_id) for r in today.matches_to_review] == [
        ("c1", "s1"),
        ("c2", "s2"),
        ("c3", "s3"),
    ]  # oldest first
    overview.apply(MatchResumed(case_id="c1", supporter_id="s1"), NOW)
    overview.apply(MatchEnded(case_id="c2", supporter_id="s2", reason="change_of_supporter"), NOW)
    today = overview.today(NOW, limit=10)
    assert [r.case_id for r in today.matches_to_review] == ["c3"]
    assert today.counts["matches_to_review"] == 1


def test_each_list_is_cut_to_the_limit_and_counted_whole() -> None:
    overview = folded(
        *(
            (ClientWaitlisted(case_id=f"c{n}", constraint="region"), NOW - hours(n))
            for n in range(5)
        )
    )

    today = overview.today(NOW, limit=2)

    assert today.counts["waiting"] == 5
    assert [w.case_id for w in today.waiting] == ["c4", "c3"]  # the longest waiting first


def test_consent_missing_names_the_parties_until_it_is_active() -> None:
    def decided(status: str, missing: list[str]) -> ConsentDecided:
        return ConsentDecided(
            case_id="c1",
            stage="entry",
            status=status,
            missing_party_ids=missing,
            ruleset=ruleset(Kind.CONSENT, "1.0.0"),
        )

    overview = folded(
        (decided("pending", ["p1", "p2"]), NOW - hours(3)),
        (decided("pending", ["p2"]), NOW - hours(1)),
    )
    [missing] = overview.today(NOW, limit=10).consents_missing
    assert (missing.missing_party_ids, missing.since) == (["p2"], NOW - hours(3))

    overview.apply(decided("active", []), NOW)
    assert overview.today(NOW, limit=10).consents_missing == []


def test_this_weeks_sessions_are_monday_to_sunday_in_the_organisations_zone() -> None:
    monday = datetime(2026, 11, 2, 0, 0, tzinfo=AUCKLAND)
    starts = [
        monday - hours(1),
        monday + hours(18),
        monday + timedelta(days=6, hours=23),
        monday + timedelta(days=7),
    ]
    overview = folded(
        (
            SessionsScheduled(
                case_id="c1",
                supporter_id="s1",
                session_ids=["a", "b", "c", "d"],
                starts=starts,
                weekday="Monday",
                local_time="18:00",
                time_zone="Pacific/Auckland",
                service_ends_on=date(2027, 2, 1),
            ),
            NOW - timedelta(days=9),
        ),
        (SessionCancelled(case_id="c1", session_id="c", reason="cancelled_by_client"), NOW),
        (SessionAttended(case_id="c1", session_id="b", outcome="completed"), NOW),
    )

    today = overview.today(NOW, limit=10)

    assert today.week_starts == date(2026, 11, 2)
    assert [(s.session_id, s.outcome) for s in today.sessions_this_week] == [("b", "completed")]

    in_london = folded(
        (SchedulingConfigured(policy=SchedulingPolicy(time_zone="Europe/London")), NOW),
        *(
            (e, at)
            for e, at in [
                (
                    SessionsScheduled(
                        case_id="c1",
                        supporter_id="s1",
                        session_ids=["a"],
                        starts=[monday - hours(1)],
                        weekday="Sunday",
                        local_time="10:00",
                        time_zone="Europe/London",
                        service_ends_on=date(2027, 2, 1),
                    ),
                    NOW,
                )
            ]
        ),
    )
    # Sunday 23:00 in Auckland is Sunday 10:00 in London: a week earlier there.
    assert in_london.today(NOW, limit=10).sessions_this_week == []


def test_meetings_to_confirm_vetting_lapsing_and_supervision_due() -> None:
    today = NOW.date()
    overview = folded(
        (
            InitialMeetingProposed(
                case_id="c1",
                supporter_id="s1",
                session_id="m1",
                start=NOW + hours(50),
                end=NOW + hours(51),
                method=Method.PHONE,
                proposed_by="scheduling",
            ),
            NOW,
        ),
        (
            InitialMeetingProposed(
                case_id="c2",
                supporter_id="s2",
                session_id="m2",
                start=NOW + hours(50),
                end=NOW + hours(51),
                method=Method.PHONE,
                proposed_by="client",
            ),
            NOW,
        ),
        (
            SessionBooked(
                case_id="c2",
                supporter_id="s2",
                session_id="m2",
                kind="initial_meeting",
                start=NOW + hours(50),
                end=NOW + hours(51),
                method=Method.PHONE,
            ),
            NOW,
        ),
        *(
            (
                SupporterEligibilityDecided(
                    supporter_id=f"s{days}",
                    eligible=True,
                    lapses_on=today + timedelta(days=days),
                    ruleset=ruleset(Kind.ELIGIBILITY, "1.0.0"),
                ),
                NOW,
            )
            for days in (5, 30, 31)
        ),
        (
            SupervisionScheduled(
                supporter_id="s1", session_id="v1", kind="supervision", start=NOW - hours(24)
            ),
            NOW - timedelta(days=20),
        ),
        (
            SupervisionScheduled(
                supporter_id="s1",
                session_id="d1",
                kind="team_debrief",
                start=NOW + timedelta(days=6),
            ),
            NOW,
        ),
        (
            SupervisionScheduled(
                supporter_id="s2",
                session_id="v2",
                kind="supervision",
                start=NOW + timedelta(days=9),
            ),
            NOW,
        ),
        (
            SupervisionScheduled(
                supporter_id="s3", session_id="v3", kind="supervision", start=NOW - hours(30)
            ),
            NOW - timedelta(days=20),
        ),
        (
            SupervisionAttended(
                supporter_id="s3", session_id="v3", kind="supervision", attended_on=today
            ),
            NOW,
        ),
    )

    lists = overview.today(NOW, limit=10)

    assert [m.case_id for m in lists.meetings_to_confirm] == ["c1"]
    assert [(v.supporter_id, v.days_left) for v in lists.vetting_lapsing] == [
        ("s5", 5),
        ("s30", 30),
    ]
    assert [(s.session_id, s.overdue) for s in lists.supervision_due] == [
        ("v1", True),
        ("d1", False),
    ]


def test_an_erased_client_leaves_every_list_but_the_figures_keep_what_happened() -> None:
    start = NOW - timedelta(days=2)
    overview = folded(
        (received("c1"), start),
        (proposed("c1", NOW + hours(10)), start),
        (ClientErased(case_id="c1", command_id="e1", requested_by="x"), NOW),
    )

    assert overview.today(NOW, limit=10).counts["awaiting_choice"] == 0
    report = overview.month("2026-11", NOW)
    assert (report.intakes, report.intake_to_first_proposal.cases) == (1, 1)


def test_a_month_counts_answers_changes_refusals_and_sessions_in_its_own_zone() -> None:
    # 1 November 00:30 in Auckland is still October in UTC.
    early = datetime(2026, 11, 1, 0, 30, tzinfo=AUCKLAND)
    october = datetime(2026, 10, 20, 9, 0, tzinfo=AUCKLAND)
    accept = ProposalAccepted(case_id="c1", supporter_id="s0", released_supporter_ids=[])
    decline = ProposalsDeclined(case_id="c2", supporter_ids=["s0"])
    overview = folded(
        (received("c1"), early - hours(10)),
        (proposed("c1", NOW), early - hours(8)),
        (accept, early),
        (MatchActivated(case_id="c1", supporter_id="s0"), early + hours(2)),
        (received("c2"), early),
        (proposed("c2", NOW), early + hours(1)),
        (decline, early + hours(3)),
        (ServiceRefused(case_id="c2", released_supporter_ids=[]), early + hours(4)),
        (MatchEnded(case_id="c1", supporter_id="s0", reason="change_of_supporter"), NOW),
        (ServiceRefused(case_id="c1", released_supporter_ids=[]), NOW),
        (received("c3"), october),
        (ClientWaitlisted(case_id="c3", constraint="region"), october),
        (
            SessionsScheduled(
                case_id="c1",
                supporter_id="s0",
                session_ids=["a", "b", "c"],
                starts=[early + hours(30), early + hours(200), early - hours(30)],
                weekday="Monday",
                local_time="18:00",
                time_zone="Pacific/Auckland",
                service_ends_on=date(2027, 2, 1),
            ),
            early,
        ),
        (SessionAttended(case_id="c1", session_id="a", outcome="completed"), NOW),
        (SessionAttended(case_id="c1", session_id="b", outcome="client_no_show"), NOW),
        (
            SupervisionScheduled(
                supporter_id="s0", session_id="v1", kind="supervision", start=early + hours(50)
            ),
            early,
        ),
        (
            SupervisionScheduled(
                supporter_id="s0", session_id="v2", kind="supervision", start=NOW + hours(50)
            ),
            early,
        ),
    )

    report = overview.month("2026-11", NOW)

    assert report.intakes == 1  # c1 arrived in October, Auckland time
    # c1 was first proposed in October (Auckland time): only c2 counts here.
    assert report.intake_to_first_proposal.model_dump() == {
        "cases": 1,
        "median_hours": 1.0,
        "p90_hours": 1.0,
    }
    assert report.intake_to_active_match.median_hours == 12.0
    assert (report.proposals_accepted, report.proposals_declined) == (1, 1)
    assert report.acceptance_rate == 0.5
    assert (report.changes_of_supporter, report.refusals, report.drop_outs) == (1, 1, 1)
    assert (report.sessions_booked, report.sessions_held, report.client_no_shows) == (2, 1, 1)
    assert (report.supervision_due, report.supervision_attended) == (1, 0)  # v2 not due yet
    assert report.supervision_compliance == 0.0
    assert report.waitlist_size == 1
    assert report.waitlist_oldest_days == round((NOW - october).total_seconds() / 86400, 1)
    october_report = overview.month("2026-10", NOW)
    assert (october_report.intakes, october_report.waitlist_size) == (2, 1)
    assert overview.months(NOW) == ["2026-10", "2026-11"]
    rows = as_csv([october_report, report]).splitlines()
    assert len(rows) == 3
    assert "intake_to_active_match_median_hours" in rows[0].split(",")


def test_the_live_ruleset_of_each_kind_is_the_latest_published() -> None:
    overview = folded(
        (RulesetPublished(ruleset=ruleset(Kind.CONSENT, "1.0.0"), revision=1), NOW - hours(3)),
        (RulesetPublished(ruleset=ruleset(Kind.CONSENT, "1.1.0"), revision=2), NOW - hours(2)),
        (
            RulesetPublished(
                ruleset=ruleset(Kind.CONSENT, "1.0.0"), revision=3, rolled_back_to="1.0.0"
            ),
            NOW - hours(1),
        ),
        (RulesetPublished(ruleset=ruleset(Kind.ELIGIBILITY, "2.0.0"), revision=1), NOW),
    )

    rules = overview.rules()

    assert [(r.ruleset.kind, r.ruleset.version, r.revision) for r in rules.live] == [
        (Kind.CONSENT, "1.0.0", 3),
        (Kind.ELIGIBILITY, "2.0.0", 1),
    ]
    assert [r.revision for r in rules.history] == [1, 3, 2, 1]


def test_a_rescheduled_session_moves_week_and_month() -> None:
    monday = datetime(2026, 11, 2, 18, 0, tzinfo=AUCKLAND)
    overview = folded(
        (
            SessionBooked(
                case_id="c1",
                supporter_id="s1",
                session_id="x1",
                kind="extra",
                start=monday + timedelta(days=30),
                end=monday + timedelta(days=30),
                method=Method.PHONE,
            ),
            NOW,
        ),
    )
    assert overview.today(NOW, limit=10).sessions_this_week == []
    assert overview.month("2026-12", NOW).sessions_booked == 1

    overview.apply(
        SessionRescheduled(case_id="c1", session_id="x1", start=monday, end=monday + hours(1)), NOW
    )

    assert [s.session_id for s in overview.today(NOW, limit=10).sessions_this_week] == ["x1"]
    assert overview.month("2026-12", NOW).sessions_booked == 0
    assert overview.month("2026-11", NOW).sessions_booked == 1


def test_vetting_lapses_are_listed_soonest_first_and_leave_when_no_longer_eligible() -> None:
    day = NOW.date()

    def decided(supporter_id: str, days: int, eligible: bool = True) -> SupporterEligibilityDecided:
        return SupporterEligibilityDecided(
            supporter_id=supporter_id,
            eligible=eligible,
            lapses_on=day + timedelta(days=days),
            ruleset=ruleset(Kind.ELIGIBILITY, "1.0.0"),
        )

    overview = folded(*((decided(f"s{n}", 40 - n * 7), NOW) for n in range(6)))
    overview.apply(decided("s2", 90), NOW)  # vetted again: lapses later
    overview.apply(decided("s3", 5, eligible=False), NOW)

    listed = overview.today(NOW, limit=1)
    assert [(v.supporter_id, v.days_left) for v in listed.vetting_lapsing] == [("s5", 5)]
    # s4 too; not s3 (ineligible), s2 (vetted again), s1 or s0 (33 and 40 days).
    assert listed.counts["vetting_lapsing"] == 2


def test_a_supporters_coming_sessions_are_theirs_alone_soonest_first() -> None:
    def booked(case_id: str, supporter_id: str, session_id: str, start: datetime) -> SessionBooked:
        return SessionBooked(
            case_id=case_id,
            supporter_id=supporter_id,
            session_id=session_id,
            kind="extra",
            start=start,
            end=start + hours(1),
            method=Method.PHONE,
        )

    overview = folded(
        (booked("c1", "s1", "a", NOW + timedelta(days=3)), NOW),
        (booked("c1", "s1", "b", NOW + hours(2)), NOW),
        (booked("c2", "s2", "c", NOW + hours(3)), NOW),
        (booked("c1", "s1", "d", NOW - hours(3)), NOW),  # past
        (booked("c1", "s1", "e", NOW + timedelta(days=20)), NOW),  # beyond the days asked
    )

    assert [s.session_id for s in overview.sessions_of("s1", NOW, days=14)] == ["b", "a"]


def test_a_supervision_moved_then_its_supporter_erased_leaves_no_month_unreadable() -> None:
    first, moved = NOW - timedelta(days=40), NOW - timedelta(days=5)
    overview = folded(
        (
            SupervisionScheduled(
                supporter_id="s1", session_id="v1", kind="supervision", start=first
            ),
            first - hours(1),
        ),
        (
            SupervisionScheduled(
                supporter_id="s1", session_id="v1", kind="supervision", start=moved
            ),
            first,
        ),
        (SupporterErased(supporter_id="s1", command_id="x", requested_by="sam"), NOW - hours(1)),
    )
    for when in (first, moved):  # each month the supervision was ever on
        month = f"{when.astimezone(overview.zone):%Y-%m}"
        assert overview.month(month, NOW).supervision_due == 0  # read, with no KeyError
