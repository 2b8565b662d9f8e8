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
)
from contracts.records import CaseRecord, SupporterRecord
from contracts.rules import ConsentFacts, EligibilityFacts, MatchingFacts, PartyConsent

NEVER = 99999


def eligibility(record: SupporterRecord, today: date, active_cases: int = 0) -> EligibilityFacts:
    vetting = record.vetting
    checks = [e for e in vetting if isinstance(e, RecordCheck) and e.issued_on <= today]
    latest_check = max(checks, key=lambda e: e.issued_on, default=None)
    interviews = [e for e in vetting if isinstance(e, Interview)]
    latest_interview = max(interviews, key=lambda e: e.held_on, default=None)
    references = [e for e in vetting if isinstance(e, Reference) and e.satisfactory]
    recovery = max((e.since for e in vetting if isinstance(e, Recovery)), default=None)
    supervised = [
        e.attended_on for e in vetting if isinstance(e, Supervision) and e.attended_on <= today
    ]
    return EligibilityFacts(
        supporter_id=record.supporter_id,
        record_check_present=latest_check is not None,
        record_check_clear=bool(latest_check and latest_check.clear),
        record_check_days_left=(latest_check.expires_on - today).days if latest_check else 0,
        interview_passed=bool(latest_interview and latest_interview.passed),
        professional_references=sum(r.reference_type == "professional" for r in references),
        personal_references=sum(r.reference_type == "personal" for r in references),
        recovery_days=(today - recovery).days if recovery else -1,
        training_courses=sorted({e.course for e in vetting if isinstance(e, Training)}),
        days_since_supervision=(today - max(supervised)).days if supervised else NEVER,
        caseload_room=record.profile.caseload_cap - active_cases,
        suspended=record.suspended,
    )


def consent(case: CaseRecord) -> ConsentFacts:
    parties = []
    for party_id in case.party_ids:
        given = case.consents.get(party_id)
        parties.append(
            PartyConsent(
                party_id=party_id,
                status=given.status if given else "missing",
                covers_stage=bool(given and given.status == "given" and case.stage in given.stages),
            )
        )
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
