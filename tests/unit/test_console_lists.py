"""The console's lists, search index and "needs attention", folded from events: no broker,
no clock but the one each test names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from contracts.envelope import Event
from contracts.intake import (
    CaseStageChanged,
    ClientErased,
    IntakeReceived,
    Method,
    Stage,
    SupporterRegistered,
    SupporterUpdated,
)
from contracts.matching import (
    ClientWaitlisted,
    MatchActivated,
    MatchProposed,
    ProposalAccepted,
    ProposedSupporter,
)
from contracts.rules import ConsentDecided, Kind, RulesetRef, SupporterEligibilityDecided
from contracts.scheduling import GroupParticipantJoined, GroupSessionCreated, SupervisionScheduled
from contracts.views import DirectoryEntry
from services.console import bulk, lists
from services.console.directory import SearchIndex
from services.console.lists import BadCursor, CaseFilters, SupporterFilters
from services.console.overview import Overview

AUCKLAND = ZoneInfo("Pacific/Auckland")
NOW = datetime(2026, 11, 4, 10, 0, tzinfo=AUCKLAND)


def ref(kind: Kind) -> RulesetRef:
    return RulesetRef(org="org-a", kind=kind, version="1.0.0", content_hash="h" * 8)


def folded(*timed: tuple[Event, datetime]) -> Overview:
    overview = Overview("org-a")
    for event, at in timed:
        overview.apply(event, at)
    return overview


def received(case_id: str) -> IntakeReceived:
    return IntakeReceived(
        case_id=case_id, scheme="s", stage=Stage.ENTRY, party_ids=["p1"], has_other_support=False
    )


def proposed(case_id: str, *supporter_ids: str, held_for: timedelta) -> MatchProposed:
    return MatchProposed(
        case_id=case_id,
        round=1,
        proposals=[
            ProposedSupporter(supporter_id=s, score=1.0, matched_on=[], held_until=NOW + held_for)
            for s in supporter_ids
        ],
    )


def days(n: float) -> timedelta:
    return timedelta(days=n)


def a_day_of_work() -> Overview:
    return folded(
        (SupporterRegistered(supporter_id="s1", region="auckland", caseload_cap=2), NOW - days(90)),
        (SupporterRegistered(supporter_id="s2", region="auckland", caseload_cap=1), NOW - days(80)),
        (
            SupporterEligibilityDecided(
                supporter_id="s1",
                eligible=True,
                lapses_on=(NOW + days(10)).date(),
                ruleset=ref(Kind.ELIGIBILITY),
            ),
            NOW - days(60),
        ),
        (
            SupporterEligibilityDecided(
                supporter_id="s2", eligible=False, lapses_on=None, ruleset=ref(Kind.ELIGIBILITY)
            ),
            NOW - days(60),
        ),
        (
            SupervisionScheduled(
                supporter_id="s1", session_id="v1", kind="supervision", start=NOW - days(2)
            ),
            NOW - days(30),
        ),
        (received("c-old"), NOW - days(30)),
        (ClientWaitlisted(case_id="c-old", constraint="language"), NOW - days(30)),
        (received("c-chose"), NOW - days(20)),
        (proposed("c-chose", "s1", "s2", held_for=-days(15)), NOW - days(19)),
        (
            ProposalAccepted(case_id="c-chose", supporter_id="s1", released_supporter_ids=["s2"]),
            NOW - days(18),
        ),
        (MatchActivated(case_id="c-chose", supporter_id="s1"), NOW - days(17)),
        (
            CaseStageChanged(
                case_id="c-chose", from_stage=Stage.ENTRY, to_stage=Stage.CONCILIATION
            ),
            NOW - days(16),
        ),
        (received("c-new"), NOW - days(5)),
        (proposed("c-new", "s1", held_for=hours(12)), NOW - days(4)),
        (
            ConsentDecided(
                case_id="c-new",
                stage="entry",
                status="pending",
                missing_party_ids=["p1"],
                ruleset=ref(Kind.CONSENT),
            ),
            NOW - days(4),
        ),
        (received("c-gone"), NOW - days(3)),
        (ClientErased(case_id="c-gone", command_id="x", requested_by="sam"), NOW - days(1)),
    )


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def ids(rows: Sequence[tuple[lists.Key, lists.Made[BaseModel]]]) -> list[str]:
    """Each row's id, in the list's order."""
    return [
        str(said.get("case_id") or said["supporter_id"])
        for row in lists.every(rows)
        if (said := row.model_dump())
    ]


def test_cases_list_by_stage_state_and_what_they_wait_on() -> None:
    kept = a_day_of_work()
    assert ids(lists.case_rows(kept, CaseFilters())) == ["c-old", "c-chose", "c-new", "c-gone"]
    assert ids(lists.case_rows(kept, CaseFilters(sort="-opened")))[0] == "c-gone"
    assert ids(lists.case_rows(kept, CaseFilters(state="waiting"))) == ["c-old"]
    assert ids(lists.case_rows(kept, CaseFilters(state="active"))) == ["c-chose"]
    assert ids(lists.case_rows(kept, CaseFilters(stage="conciliation"))) == ["c-chose"]
    assert ids(lists.case_rows(kept, CaseFilters(waits_on="consent"))) == ["c-new"]
    assert ids(lists.case_rows(kept, CaseFilters(waits_on="choice"))) == ["c-new"]
    [gone] = lists.every(lists.case_rows(kept, CaseFilters(state="erased")))
    assert gone.waits_on == []


def test_supporters_list_by_eligibility_lapse_room_and_supervision() -> None:
    kept = a_day_of_work()
    rows = {
        row.supporter_id: row
        for row in lists.every(lists.supporter_rows(kept, SupporterFilters(), NOW))
    }
    assert (rows["s1"].caseload, rows["s1"].room) == (2, 0)  # c-chose chose them, c-new holds one
    assert (rows["s2"].caseload, rows["s2"].room) == (0, 1)  # released when c-chose chose s1
    assert rows["s1"].supervision_overdue_since == NOW - days(2)

    def only(**filters: Any) -> list[str]:
        return ids(lists.supporter_rows(kept, SupporterFilters(**filters), NOW))

    assert only(eligibility="eligible") == ["s1"]
    assert only(eligibility="ineligible") == ["s2"]
    assert only(lapsing_within_days=10) == ["s1"]
    assert only(lapsing_within_days=9) == []
    assert only(with_room=True) == ["s2"]
    assert only(supervision_overdue=True) == ["s1"]
    kept.apply(
        SupporterUpdated(
            supporter_id="s2", changed_fields=["caseload_cap"], suspended=True, caseload_cap=3
        ),
        NOW,
    )
    assert only(suspended=True) == ["s2"]
    assert {
        r.room
        for r in lists.every(lists.supporter_rows(kept, SupporterFilters(suspended=True), NOW))
    } == {3}


def test_proposals_unanswered_for_more_than_n_days() -> None:
    kept = a_day_of_work()
    assert ids(lists.proposal_rows(kept, 0, NOW)) == ["c-new"]
    assert ids(lists.proposal_rows(kept, 4, NOW)) == ["c-new"]
    assert ids(lists.proposal_rows(kept, 5, NOW)) == []


def test_needs_attention_is_what_is_overdue_most_overdue_first() -> None:
    items = lists.every(lists.attention(a_day_of_work(), NOW))
    assert [(i.kind, i.case_id or i.supporter_id) for i in items] == [
        ("waiting_long", "c-old"),  # waited 30 days: overdue since day 14
        ("vetting_lapsing", "s1"),  # lapses in 10 days: flagged from 14 days before
        ("supervision_overdue", "s1"),  # due 2 days ago
        ("consent_missing", "c-new"),  # missing 4 days: overdue from day 3
        ("hold_ending", "c-new"),  # its hold ends in 12 hours
    ]
    assert all("_" not in item.what for item in items)  # plain words, not codes


def test_a_page_starts_after_its_cursor_and_new_rows_never_shift_it() -> None:
    kept = a_day_of_work()
    listing = lists.listing("cases")
    first = lists.paged(lists.case_rows(kept, CaseFilters()), listing, None, 2)
    assert [r.case_id for r in first.items] == ["c-old", "c-chose"]
    kept.apply(received("c-between"), NOW - days(25))  # sorts before the cursor
    second = lists.paged(lists.case_rows(kept, CaseFilters()), listing, first.next_cursor, 2)
    assert [r.case_id for r in second.items] == ["c-new", "c-gone"]
    assert second.next_cursor is None
    with pytest.raises(BadCursor, match="other filters"):
        lists.paged([], lists.listing("cases", state="waiting"), first.next_cursor, 2)
    with pytest.raises(BadCursor):
        lists.paged([], listing, "garbage!", 2)


def test_csv_keeps_formulas_out_of_a_spreadsheet() -> None:
    kept = a_day_of_work()
    rows = lists.every(lists.case_rows(kept, CaseFilters(state="waiting")))
    table = lists.as_csv(rows, ("case_id", "waits_on", "stage")).splitlines()
    assert table == ["case_id,waits_on,stage", "c-old,supporter,entry"]
    assert lists._cell("=HYPERLINK()") == "'=HYPERLINK()"


def entry(
    subject_id: str, name: str, email: str | None = None, phone: str | None = None
) -> DirectoryEntry:
    person = "supporter" if subject_id.startswith("S") else "client"
    return DirectoryEntry(
        person=person, subject_id=subject_id, display_name=name, email=email, phone=phone
    )


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("smith", {"C-0042": "name", "S-1": "name"}),
        ("aroha smi", {"C-0042": "name"}),
        ("NGATI", {"C-0042": "name"}),  # accents and case folded
        ("c-00", {"C-0042": "reference"}),
        ("S-1", {"S-1": "reference"}),  # not C-0042's "Smith" and phone "1"
        ("5551234", {"C-0042": "phone"}),  # the end of +64 21 555 1234
        ("021 555 1234", {"C-0042": "phone"}),  # the national form of it
        ("aroha@exa", {"C-0042": "email"}),
        ("smith zzz", {}),  # every word must match
        ("   ", {}),
    ],
)
def test_search_finds_by_reference_name_email_and_phone(query: str, found: dict[str, str]) -> None:
    index = SearchIndex()
    index.put(entry("C-0042", "Aroha Ngāti-Smith", "aroha@example.org", "+64 21 555 1234"))
    index.put(entry("S-1", "Sam Smith", phone="021 555 9999"))
    assert {who[1]: on for who, on in index.search(query).items()} == found


def test_search_forgets_a_person_dropped_or_changed() -> None:
    index = SearchIndex()
    index.put(entry("S-1", "Sam Smith"))
    index.put(entry("S-1", "Sam Jones"))  # their name changed
    assert index.search("smith") == {}
    assert list(index.search("jones")) == [("supporter", "S-1")]
    index.drop(("supporter", "S-1"))
    assert index.search("sam") == {}
    assert len(index) == 0


def test_a_bulk_consent_records_each_missing_partys_and_nothing_else() -> None:
    kept = a_day_of_work()
    sent = bulk.sendings(kept, "GiveConsent", ["c-new", "c-chose", "c-unknown"], "", NOW.date())
    assert [(s.case_id, s.type_name, s.body["party_id"]) for s in sent] == [
        ("c-new", "GiveConsent", "p1")  # c-chose misses nothing; c-unknown is not held
    ]
    assert sent[0].body["stages"] == ["entry"]
    assert "04 November 2026" in sent[0].what
    moved = bulk.sendings(kept, "ChangeCaseStage", ["c-new", "c-old"], "conciliation", NOW.date())
    assert [s.body for s in moved] == [
        {"case_id": "c-new", "stage": "conciliation"},
        {"case_id": "c-old", "stage": "conciliation"},
    ]
    assert moved[0].what == "Moved to the stage: Conciliation"


def test_a_group_session_keeps_who_joined_it_once_each() -> None:
    start = NOW + days(1)
    created = GroupSessionCreated(
        group_id="g1",
        facilitator_id="s1",
        start=start,
        end=start + hours(2),
        method=Method.VIDEO,
        capacity=6,
    )
    joined = GroupParticipantJoined(group_id="g1", case_id="c-new", places_left=5)
    kept = folded((created, NOW), (joined, NOW), (joined, NOW))  # the second: redelivered
    assert kept.groups["g1"].case_ids == ["c-new"]
    assert (kept.groups["g1"].capacity, kept.groups["g1"].method) == (6, "video")
