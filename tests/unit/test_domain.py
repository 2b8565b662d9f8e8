"""Intake decisions, without a broker."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from alongside import sample
from contracts.intake import (
    ChangeCaseStage,
    Contact,
    FamilyOrFriend,
    GiveConsent,
    Interview,
    NameSupportPerson,
    PeerSupporter,
    RecordCheck,
    RecordVettingEvidence,
    Stage,
    SupporterChanges,
    UpdateSupporter,
    VettingEvidence,
    WithdrawConsent,
)
from contracts.records import CaseRecord, SupporterRecord
from runtime.changes import Refused
from services.intake import domain

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CTX = domain.Context(now=NOW)
TODAY = date(2026, 11, 23)


def supporter() -> SupporterRecord:
    record = domain.register_supporter(sample.supporter(random.Random(1), "s1"), None, CTX).record
    assert isinstance(record, SupporterRecord)
    return record


def case(person: bool = True) -> CaseRecord:
    record = domain.submit_intake(sample.intake(random.Random(1), "c1"), None, CTX).record
    assert isinstance(record, CaseRecord)
    if person:
        named = NameSupportPerson(case_id="c1", support_person=PeerSupporter(supporter_id="s1"))
        ctx = domain.Context(now=NOW, referenced_supporter=supporter())
        record = domain.name_support_person(named, record, ctx).record
    return record


def consent(party: str) -> GiveConsent:
    return GiveConsent(
        case_id="c1", party_id=party, stages=[Stage.INVESTIGATION, Stage.ENTRY], given_on=TODAY
    )


def test_registering_twice_is_refused_on_the_id() -> None:
    with pytest.raises(Refused) as info:
        domain.register_supporter(sample.supporter(random.Random(1), "s1"), supporter(), CTX)
    assert info.value.errors[0].field == "data.supporter_id"


def test_update_changes_only_the_named_fields_and_reports_them() -> None:
    before = supporter()
    decision = domain.update_supporter(
        UpdateSupporter(
            supporter_id="s1", changes=SupporterChanges(caseload_cap=9, suspended=True)
        ),
        before,
        CTX,
    )
    after = decision.record
    assert isinstance(after, SupporterRecord)
    assert after.profile.caseload_cap == 9
    assert after.suspended
    assert after.profile.languages == before.profile.languages
    assert decision.events[0].model_dump()["changed_fields"] == ["caseload_cap", "suspended"]


def test_null_fields_of_an_update_are_left_as_they_are() -> None:
    # What a client that serialises every optional field sends; it used to get no reply.
    before = supporter()
    changes = SupporterChanges.model_validate(
        {name: None for name in SupporterChanges.model_fields} | {"caseload_cap": 4}
    )
    decision = domain.update_supporter(
        UpdateSupporter(supporter_id="s1", changes=changes), before, CTX
    )
    after = decision.record
    assert isinstance(after, SupporterRecord)
    assert after.profile.caseload_cap == 4
    assert after.profile.model_dump(exclude={"caseload_cap"}) == before.profile.model_dump(
        exclude={"caseload_cap"}
    )
    assert after.suspended == before.suspended
    assert decision.events[0].model_dump()["changed_fields"] == ["caseload_cap"]


def test_an_update_naming_only_nulls_is_refused() -> None:
    with pytest.raises(ValidationError, match="name at least one field to change"):
        SupporterChanges.model_validate({"display_name": None, "region": None})


def test_vetting_event_says_until_when_a_record_check_holds_and_nothing_else() -> None:
    check = RecordCheck(
        issued_on=date(2026, 1, 1), expires_on=date(2028, 1, 1), clear=True, reference="RC-1"
    )
    decision = domain.record_vetting_evidence(
        RecordVettingEvidence(supporter_id="s1", evidence=check), supporter(), CTX
    )
    event = decision.events[0].model_dump()
    assert event == {
        "supporter_id": "s1",
        "kind": "record_check",
        "recorded_for": date(2026, 1, 1),
        "valid_until": date(2028, 1, 1),
    }
    interview = domain.record_vetting_evidence(
        RecordVettingEvidence(supporter_id="s1", evidence=Interview(held_on=TODAY, passed=True)),
        supporter(),
        CTX,
    )
    assert interview.events[0].model_dump()["valid_until"] is None


def test_evidence_for_an_unknown_supporter_is_refused() -> None:
    with pytest.raises(Refused, match="no supporter s9"):
        domain.record_vetting_evidence(
            RecordVettingEvidence(
                supporter_id="s9", evidence=Interview(held_on=TODAY, passed=True)
            ),
            None,
            CTX,
        )


def test_consent_needs_a_support_person_and_a_party() -> None:
    with pytest.raises(Refused, match="no support person"):
        domain.give_consent(consent("client"), case(person=False), CTX)
    with pytest.raises(Refused) as info:
        domain.give_consent(consent("landlord"), case(), CTX)
    assert info.value.errors[0].field == "data.party_id"


def test_consent_is_recorded_per_party_with_sorted_stages_and_can_be_withdrawn() -> None:
    record = domain.give_consent(consent("respondent"), case(), CTX).record
    assert isinstance(record, CaseRecord)
    given = record.consents["respondent"]
    assert given.status == "given"
    assert given.stages == [Stage.ENTRY, Stage.INVESTIGATION]
    assert given.support_person_ref == "peer:s1"

    withdrawn = domain.withdraw_consent(
        WithdrawConsent(case_id="c1", party_id="respondent", withdrawn_on=TODAY), record, CTX
    ).record
    assert isinstance(withdrawn, CaseRecord)
    assert withdrawn.consents["respondent"].status == "withdrawn"
    with pytest.raises(Refused, match="no consent in force"):
        domain.withdraw_consent(
            WithdrawConsent(case_id="c1", party_id="respondent", withdrawn_on=TODAY), withdrawn, CTX
        )


def test_naming_another_support_person_needs_consent_again() -> None:
    record = domain.give_consent(consent("client"), case(), CTX).record
    family = FamilyOrFriend(
        kind="friend", display_name="Pat", contact=Contact(phone="+64 21 000000")
    )
    decision = domain.name_support_person(
        NameSupportPerson(case_id="c1", support_person=family), record, CTX
    )
    assert isinstance(decision.record, CaseRecord)
    assert decision.record.consents == {}
    assert decision.events[0].model_dump() == {
        "case_id": "c1",
        "kind": "friend",
        "supporter_id": None,
    }


def test_a_suspended_or_unknown_peer_cannot_be_named() -> None:
    named = NameSupportPerson(case_id="c1", support_person=PeerSupporter(supporter_id="s1"))
    with pytest.raises(Refused, match="no supporter s1"):
        domain.name_support_person(named, case(person=False), CTX)
    suspended = supporter().model_copy(update={"suspended": True})
    with pytest.raises(Refused, match="suspended"):
        domain.name_support_person(
            named, case(person=False), domain.Context(now=NOW, referenced_supporter=suspended)
        )


def test_stage_changes_must_change_something_and_closed_cases_stay_closed() -> None:
    with pytest.raises(Refused, match="already at stage entry"):
        domain.change_case_stage(ChangeCaseStage(case_id="c1", stage=Stage.ENTRY), case(), CTX)
    closed = domain.change_case_stage(
        ChangeCaseStage(case_id="c1", stage=Stage.CLOSED), case(), CTX
    ).record
    assert isinstance(closed, CaseRecord)
    with pytest.raises(Refused, match="closed"):
        domain.change_case_stage(ChangeCaseStage(case_id="c1", stage=Stage.ENTRY), closed, CTX)


# 20:00 UTC on 7 December is already 8 December in Auckland (UTC+13).
EVENING = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
AUCKLAND_TODAY = date(2026, 12, 8)
IN_AUCKLAND = domain.Context(now=EVENING, local_today=AUCKLAND_TODAY)


def _dated(kind: str, day: date) -> VettingEvidence:
    """A piece of evidence of ``kind`` that happened on ``day``."""
    return TypeAdapter(VettingEvidence).validate_python(
        {
            "record_check": {
                "kind": kind,
                "issued_on": day,
                "expires_on": date(2028, 12, 1),
                "clear": True,
                "reference": "RC-1",
            },
            "interview": {"kind": kind, "held_on": day, "passed": True},
            "reference": {
                "kind": kind,
                "reference_type": "personal",
                "received_on": day,
                "satisfactory": True,
            },
            "recovery": {"kind": kind, "since": day},
            "training": {"kind": kind, "course": "peer_support_foundations", "completed_on": day},
            "supervision": {"kind": kind, "session": "team_debrief", "attended_on": day},
        }[kind]
    )


EVIDENCE_DATES = [
    ("record_check", "issued_on"),
    ("interview", "held_on"),
    ("reference", "received_on"),
    ("recovery", "since"),
    ("training", "completed_on"),
    ("supervision", "attended_on"),
]


@pytest.mark.parametrize(("kind", "field"), EVIDENCE_DATES)
def test_evidence_dated_after_the_organisations_today_is_refused_naming_its_date(
    kind: str, field: str
) -> None:
    tomorrow = _dated(kind, date(2026, 12, 9))

    with pytest.raises(Refused) as info:
        domain.record_vetting_evidence(
            RecordVettingEvidence(supporter_id="s1", evidence=tomorrow), supporter(), IN_AUCKLAND
        )

    assert [(e.field, e.reason) for e in info.value.errors] == [
        (
            f"data.evidence.{field}",
            "cannot be in the future: evidence counts once it has happened "
            "(today is 2026-12-08 here)",
        )
    ]
    # Today where the organisation works counts, though it is tomorrow in UTC.
    today = RecordVettingEvidence(supporter_id="s1", evidence=_dated(kind, AUCKLAND_TODAY))
    assert domain.record_vetting_evidence(today, supporter(), IN_AUCKLAND).events


def test_a_record_check_may_expire_in_the_future_but_not_be_issued_there() -> None:
    check = RecordCheck(
        issued_on=AUCKLAND_TODAY, expires_on=date(2028, 12, 8), clear=True, reference="RC-1"
    )
    recorded = domain.record_vetting_evidence(
        RecordVettingEvidence(supporter_id="s1", evidence=check), supporter(), IN_AUCKLAND
    )
    assert recorded.events[0].model_dump()["valid_until"] == date(2028, 12, 8)
    # In a zone still on 7 December, the same check was issued tomorrow.
    in_london = domain.Context(now=EVENING, local_today=date(2026, 12, 7))
    with pytest.raises(Refused) as info:
        domain.record_vetting_evidence(
            RecordVettingEvidence(supporter_id="s1", evidence=check), supporter(), in_london
        )
    assert info.value.errors[0].field == "data.evidence.issued_on"


def test_consent_given_or_withdrawn_in_the_future_is_refused() -> None:
    later = date(2026, 12, 9)
    future = consent("respondent").model_copy(update={"given_on": later})
    with pytest.raises(Refused) as given:
        domain.give_consent(future, case(), IN_AUCKLAND)
    assert [(e.field, e.reason) for e in given.value.errors] == [
        (
            "data.given_on",
            "cannot be in the future: consent counts from the day it is given "
            "(today is 2026-12-08 here)",
        )
    ]

    record = domain.give_consent(consent("respondent"), case(), IN_AUCKLAND).record
    assert isinstance(record, CaseRecord)
    withdrawal = WithdrawConsent(case_id="c1", party_id="respondent", withdrawn_on=later)
    with pytest.raises(Refused) as withdrawn:
        domain.withdraw_consent(withdrawal, record, IN_AUCKLAND)
    assert [(e.field, e.reason) for e in withdrawn.value.errors] == [
        (
            "data.withdrawn_on",
            "cannot be in the future: a withdrawal holds at once, from the "
            "day it is made (today is 2026-12-08 here)",
        )
    ]


def test_without_the_organisations_date_no_day_after_today_anywhere_is_accepted() -> None:
    # 20:00 UTC: 8 December in Auckland, 9 December nowhere yet (UTC+14 is at 10:00 on 8th).
    ctx = domain.Context(now=EVENING)
    assert ctx.today == AUCKLAND_TODAY
    evidence = RecordVettingEvidence(
        supporter_id="s1", evidence=_dated("interview", date(2026, 12, 9))
    )
    with pytest.raises(Refused):
        domain.record_vetting_evidence(evidence, supporter(), ctx)


def test_every_intake_command_has_a_handler_and_every_change_a_route() -> None:
    from contracts import catalogue
    from services.intake.handlers import handlers

    intake_commands = {n for n, c in catalogue.COMMANDS.items() if c.service == "intake"}
    assert set(handlers.commands) == intake_commands
    # Every command but the reads (an export, the views, the search's directory) and erasure
    # (no record is left) changes a record through a route.
    outside = {
        "ExportPersonData",
        "ViewCase",
        "ViewSupporter",
        "ViewDecision",
        "ReadDirectory",
        "EraseClient",
        "EraseSupporter",
    }
    assert {c.type_name for c in domain.ROUTES} == intake_commands - outside
