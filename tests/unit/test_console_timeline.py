"""A case's timeline, folded from the real events: plain words, who by role, date order, and
the decision behind an entry named only to those who may read why. No broker."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from contracts import catalogue
from contracts.envelope import Event
from contracts.intake import (
    ClientErased,
    ConsentGiven,
    ConsentWithdrawn,
    IntakeReceived,
    Method,
    Stage,
)
from contracts.matching import (
    ClientWaitlisted,
    MatchEnded,
    MatchProposed,
    ProposalAccepted,
    ProposedSupporter,
)
from contracts.rules import ConsentDecided, Kind, MatchingPolicyDecided, RulesetRef
from contracts.scheduling import (
    InitialMeetingProposed,
    SchedulingConfigured,
    SchedulingPolicy,
    SessionCancelled,
    SupervisionScheduled,
)
from contracts.timeline import CaseTimeline
from contracts.views import CaseViewed, DecisionViewed
from services.console.labels import plain
from services.console.overview import FOLDED, Overview
from services.console.timeline import as_csv
from services.console.timeline_events import TOLD

UTC = ZoneInfo("UTC")
AUCKLAND = ZoneInfo("Pacific/Auckland")
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ANA = "alongside/console/acc-ana"  # a console account, as a view's source names it


def minutes(n: int) -> datetime:
    return START + timedelta(minutes=n)


def folded(*timed: tuple[Event, datetime]) -> Overview:
    overview = Overview("org-a")
    for event, at in timed:
        overview.apply(event, at)
    return overview


def read(overview: Overview, case_id: str = "c1", *, supervisor: bool = False) -> CaseTimeline:
    return overview.timeline(case_id, reads_decisions=supervisor, reads_access_log=supervisor)


def rules(kind: Kind) -> RulesetRef:
    return RulesetRef(org="org-a", kind=kind, version="1", content_hash="h" * 8)


def proposed(*supporter_ids: str) -> MatchProposed:
    return MatchProposed(
        case_id="c1",
        round=1,
        proposals=[
            ProposedSupporter(supporter_id=s, score=1.0, matched_on=[], held_until=minutes(999))
            for s in supporter_ids
        ],
    )


STORY: list[tuple[Event, datetime]] = [
    (
        IntakeReceived(
            case_id="c1",
            scheme="s",
            stage=Stage.ENTRY,
            party_ids=["p1"],
            has_other_support=False,
        ),
        minutes(0),
    ),
    (
        ConsentGiven(case_id="c1", party_id="client", stages=[Stage.ENTRY], given_on=START.date()),
        minutes(1),
    ),
    (
        MatchingPolicyDecided(
            case_id="c1", ruleset=rules(Kind.MATCHING_POLICY), decision_id="d-policy"
        ),
        minutes(2),
    ),
    (proposed("S-0041", "S-0042", "S-0043"), minutes(3)),
    (
        ProposalAccepted(case_id="c1", supporter_id="S-0042", released_supporter_ids=[]),
        minutes(4),
    ),
    (ConsentWithdrawn(case_id="c1", party_id="p1", withdrawn_on=date(2026, 11, 2)), minutes(5)),
    (
        ConsentDecided(
            case_id="c1",
            stage="entry",
            status="suspended",
            missing_party_ids=["p1"],
            ruleset=rules(Kind.CONSENT),
            decision_id="d-consent",
        ),
        minutes(6),
    ),
    (MatchEnded(case_id="c1", supporter_id="S-0042", reason="change_of_supporter"), minutes(7)),
    (SessionCancelled(case_id="c1", session_id="m1", reason="cancelled_by_client"), minutes(8)),
    (CaseViewed(case_id="c1", command_id="v1", viewed_by=ANA), minutes(9)),
]


def test_each_event_of_a_case_is_told_in_plain_words_with_who_by_role_and_why() -> None:
    timeline = read(folded(*STORY))
    told = [(e.what, e.who, e.why) for e in timeline.entries]
    assert told == [
        (
            "Intake received at stage Entry; the other parties: p1",
            "a coordinator or the intake form",
            None,
        ),
        ("Consent given by the client for Entry (on Mon 02 Nov 2026)", "the client", None),
        ("The client's matching policy was decided", "the rules service", None),
        ("Proposed 3 supporters (round 1): S-0041, S-0042, S-0043", "the matching service", None),
        ("The client chose S-0042", "the client", None),
        ("Consent withdrawn by the other party p1 (on Mon 02 Nov 2026)", "a party", None),
        ("Consent suspended for stage Entry, missing from p1", "the rules service", None),
        (
            "The match with S-0042 ended",
            "the client",
            "the client asked for another supporter",
        ),
        ("Session m1 cancelled", "the client", "the client cancelled"),
        ("The case was viewed", "someone signed in to the console", None),
    ]
    assert [e.at for e in timeline.entries] == [at for _, at in STORY]
    assert [e.event for e in timeline.entries][:2] == ["IntakeReceived", "ConsentGiven"]
    assert (timeline.org, timeline.case_id, timeline.erased) == ("org-a", "c1", False)


def test_the_decision_and_the_viewer_are_named_only_to_those_who_may_read_them() -> None:
    overview = folded(*STORY)
    coordinator = read(overview)
    assert all(e.decision_id is None and e.viewed_by is None for e in coordinator.entries)

    supervisor = read(overview, supervisor=True)
    assert [(e.event, e.decision_id) for e in supervisor.entries if e.decision_id] == [
        ("MatchingPolicyDecided", "d-policy"),
        ("ConsentDecided", "d-consent"),
    ]
    assert [e.viewed_by for e in supervisor.entries if e.viewed_by] == [ANA]
    # The same words for both: only the names of the decision and the viewer differ.
    assert [e.what for e in supervisor.entries] == [e.what for e in coordinator.entries]


def test_entries_are_in_date_order_whatever_order_their_events_came_in() -> None:
    late, early = minutes(30), minutes(10)
    overview = folded(
        (ProposalAccepted(case_id="c1", supporter_id="s1", released_supporter_ids=[]), late),
        (proposed("s1"), early),
        (ClientWaitlisted(case_id="c1", constraint="eligible-with-free-slot"), early),
    )
    timeline = read(overview)
    assert [e.at for e in timeline.entries] == [early, early, late]
    # Of one moment, in the order they came.
    assert [e.event for e in timeline.entries] == [
        "MatchProposed",
        "ClientWaitlisted",
        "ProposalAccepted",
    ]
    assert timeline.entries[0].what == "Proposed 1 supporter (round 1): s1"
    assert timeline.entries[1].why == "no eligible supporter has a free slot"


def test_a_session_time_is_told_in_the_organisations_zone_and_times_are_kept_in_utc() -> None:
    meeting_at = datetime(2026, 11, 10, 5, 0, tzinfo=UTC)  # 18:00 in Auckland
    overview = folded(
        (SchedulingConfigured(policy=SchedulingPolicy(time_zone="Pacific/Auckland")), START),
        (
            InitialMeetingProposed(
                case_id="c1",
                supporter_id="s1",
                session_id="m1",
                start=meeting_at,
                end=meeting_at + timedelta(hours=1),
                method=Method.PHONE,
                proposed_by="client",
            ),
            START.astimezone(AUCKLAND),
        ),
    )
    [entry] = read(overview).entries
    phone = plain(Method.PHONE, "method")  # the pages' words for it
    assert entry.what == f"First meeting proposed for Tue 10 Nov 2026, 18:00 ({phone}) with s1"
    assert entry.who == "the client"
    assert entry.at == START
    assert entry.at.utcoffset() == timedelta(0)


def test_only_the_cases_own_events_are_on_its_timeline_and_erasure_keeps_ids_and_dates() -> None:
    overview = folded(
        *STORY,
        (proposed("s9").model_copy(update={"case_id": "c2"}), minutes(20)),
        (
            SupervisionScheduled(
                supporter_id="s1", session_id="sv1", kind="supervision", start=minutes(90)
            ),
            minutes(21),
        ),
        (
            DecisionViewed(
                decision_id="d-elig",
                kind=Kind.ELIGIBILITY,
                subject_id="c1",  # an eligibility decision is about a supporter, never a case
                command_id="v2",
                viewed_by=ANA,
            ),
            minutes(22),
        ),
        (ClientErased(case_id="c1", command_id="e1", requested_by=ANA), minutes(23)),
    )
    timeline = read(overview)
    assert len(timeline.entries) == len(STORY) + 1
    erased = timeline.entries[-1]
    assert (erased.what, erased.who) == (
        "The client was erased: only ids and dates are kept",
        "a supervisor",
    )
    assert timeline.erased
    assert [e.what for e in read(overview, "c2").entries] == ["Proposed 1 supporter (round 1): s9"]
    assert read(overview, "c-unknown").entries == []


def test_a_case_erased_when_its_retention_period_ended_says_so() -> None:
    retention = ClientErased(
        case_id="c1", command_id="e1", requested_by="alongside/intake/retention"
    )
    [entry] = read(folded((retention, START))).entries
    assert (entry.who, entry.why) == ("the service", "the case's retention period ended")


def test_every_event_about_a_case_is_told_and_read_by_the_console() -> None:
    about_a_case = {model for model in catalogue.EVENTS.values() if "case_id" in model.model_fields}
    assert about_a_case <= set(TOLD), about_a_case - set(TOLD)
    assert set(TOLD) <= set(catalogue.EVENTS.values())
    assert set(TOLD) <= FOLDED  # parsed from the stream, not skipped unread


def test_the_timeline_as_csv_has_a_row_an_entry() -> None:
    table = as_csv(read(folded(*STORY), supervisor=True)).splitlines()
    assert table[0] == "org,case_id,at,what,who,why,decision_id,viewed_by,event"
    assert len(table) == 1 + len(STORY)
    assert table[4].startswith('org-a,c1,2026-11-02T09:03:00Z,"Proposed 3 supporters (round 1)')
