"""Facts for the rulesets, built from stored records as of a given day. No I/O.

Ages and remaining days are computed here, not by engine timers: a decision
is a function of the record and the day, so evaluating the same record on a
later day is how eligibility lapses on its own.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from contracts.intake import (
    Interview,
    Preference,
    RecordCheck,
    Recovery,
    Reference,
    Supervision,
    Training,
    VettingEvidence,
)
from contracts.records import CaseRecord, SupporterRecord
from contracts.rules import ConsentFacts, EligibilityFacts, MatchingFacts, PartyConsent

NEVER = 99999


def eligibility(record: SupporterRecord, today: date, active_cases: int = 0) -> EligibilityFacts:
    vetting = record.vetting
    check = _latest_record_check(vetting, today)
    return EligibilityFacts(
        supporter_id=record.supporter_id,
        record_check_present=check is not None,
        record_check_clear=bool(check and check.clear),
        record_check_days_left=(check.expires_on - today).days if check else 0,
        interview_passed=_interview_passed(vetting),
        professional_references=_satisfactory_references(vetting, "professional"),
        personal_references=_satisfactory_references(vetting, "personal"),
        recovery_days=_recovery_days(vetting, today),
        training_courses=_training_courses(vetting),
        days_since_supervision=_days_since_supervision(vetting, today),
        caseload_room=record.profile.caseload_cap - active_cases,
        suspended=record.suspended,
    )


def _latest_record_check(vetting: list[VettingEvidence], today: date) -> RecordCheck | None:
    """The record check issued last, of those issued by ``today``."""
    checks = [e for e in vetting if isinstance(e, RecordCheck) and e.issued_on <= today]
    return max(checks, key=lambda e: e.issued_on, default=None)


def _interview_passed(vetting: list[VettingEvidence]) -> bool:
    """Whether the interview held last was passed."""
    interviews = [e for e in vetting if isinstance(e, Interview)]
    latest = max(interviews, key=lambda e: e.held_on, default=None)
    return bool(latest and latest.passed)


def _satisfactory_references(
    vetting: list[VettingEvidence], reference_type: Literal["professional", "personal"]
) -> int:
    references = [e for e in vetting if isinstance(e, Reference) and e.satisfactory]
    return sum(r.reference_type == reference_type for r in references)


def _recovery_days(vetting: list[VettingEvidence], today: date) -> int:
    """Days since the recovery recorded last began; -1 when none is recorded."""
    since = max((e.since for e in vetting if isinstance(e, Recovery)), default=None)
    return (today - since).days if since else -1


def _training_courses(vetting: list[VettingEvidence]) -> list[str]:
    return sorted({e.course for e in vetting if isinstance(e, Training)})


def _days_since_supervision(vetting: list[VettingEvidence], today: date) -> int:
    """Days since the last supervision or debrief attended by ``today``; ``NEVER`` if none."""
    attended = [
        e.attended_on for e in vetting if isinstance(e, Supervision) and e.attended_on <= today
    ]
    return (today - max(attended)).days if attended else NEVER


def consent(case: CaseRecord) -> ConsentFacts:
    parties = [_party_consent(case, party_id) for party_id in case.party_ids]
    return ConsentFacts(
        case_id=case.case_id,
        stage=case.stage.value,
        support_person_named=case.support_person is not None,
        parties=parties,
        missing_parties=[
            p.party_id for p in parties if p.status != "withdrawn" and not p.covers_stage
        ],
        withdrawn_parties=[p.party_id for p in parties if p.status == "withdrawn"],
    )


def _party_consent(case: CaseRecord, party_id: str) -> PartyConsent:
    given = case.consents.get(party_id)
    return PartyConsent(
        party_id=party_id,
        status=given.status if given else "missing",
        covers_stage=bool(given and given.status == "given" and case.stage in given.stages),
    )


Strength = Literal["must", "prefer", "none"]


def _preference(preference: Preference | None) -> tuple[Strength, list[str]]:
    if preference is None:
        return "none", []
    return preference.strength.value, list(preference.values)


def matching(case: CaseRecord, today: date) -> MatchingFacts:
    client = case.intake.client

    gender, cultural, lived = (
        _preference(client.gender_preference),
        _preference(client.cultural_preference),
        _preference(client.lived_experience_preference),
    )
    return MatchingFacts(
        case_id=case.case_id,
        age=today.year - client.birth_year,
        languages=client.languages,
        gender_preference_strength=gender[0],
        gender_preference_values=gender[1],
        cultural_preference_strength=cultural[0],
        cultural_preference_values=cultural[1],
        lived_experience_preference_strength=lived[0],
        lived_experience_preference_values=lived[1],
        age_preference=client.age_preference,
        methods=[m.value for m in client.methods],
        safety_concerns=client.safety_concerns,
        access_needs=client.access_needs,
        region=client.region,
    )
