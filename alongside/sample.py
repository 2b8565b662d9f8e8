"""A seeded synthetic population of supporters and client intakes.

Used by the demo, the tests and the benchmarks. Names are invented; nothing
here describes a real person.
"""

from __future__ import annotations

import random
from datetime import date, time, timedelta

from contracts.intake import (
    Affiliation,
    ClientProfile,
    Contact,
    Dispute,
    Interview,
    Method,
    OtherParty,
    Preference,
    RecordCheck,
    RecordVettingEvidence,
    Recovery,
    Reference,
    RegisterSupporter,
    Slot,
    Strength,
    SubmitIntake,
    Supervision,
    SupporterProfile,
    Training,
    Weekday,
)

FIRST_NAMES = [
    "Ana",
    "Tui",
    "Mere",
    "Sam",
    "Lee",
    "Noor",
    "Ravi",
    "Jo",
    "Kim",
    "Alex",
    "Sione",
    "Mia",
]
LIVED_EXPERIENCE = [
    "tenancy_dispute",
    "homelessness",
    "addiction",
    "mental_health",
    "prison",
    "domestic_violence",
    "employment_dispute",
    "benefits_dispute",
]
LANGUAGES = ["en", "en", "en", "mi", "sm", "to", "zh", "hi", "ar"]
REGIONS = ["north", "central", "south"]
SCHEMES = ["tenancy_tribunal", "banking_ombudsman", "employment_relations"]
RESPONDENTS = ["Harbour Housing Ltd", "First Coastal Bank", "Metro Council", "Kiwi Energy"]
CULTURES = ["maori", "pasifika", "pakeha", "asian", "middle_eastern"]


def _slots(rng: random.Random) -> list[Slot]:
    days = rng.sample(list(Weekday), k=rng.randint(1, 3))
    slots = []
    for day in days:
        start = rng.choice([9, 13, 17, 18])
        slots.append(Slot(day=day, start=time(start), end=time(start + 2)))
    return slots


def supporter(rng: random.Random, supporter_id: str, reachable: bool = False) -> RegisterSupporter:
    """``reachable``: they agreed to be emailed (the demo's people hear from us)."""
    name = rng.choice(FIRST_NAMES)
    return RegisterSupporter(
        supporter_id=supporter_id,
        profile=SupporterProfile(
            display_name=f"{name} {supporter_id}",
            contact=Contact(email=f"{supporter_id}@peers.example.org", may_contact=reachable),
            lived_experience=rng.sample(LIVED_EXPERIENCE, k=rng.randint(1, 3)),
            skills=rng.sample(["listening", "writing", "te_reo", "sign_language"], k=1),
            languages=sorted({"en", rng.choice(LANGUAGES)}),
            birth_year=rng.randint(1950, 2000),
            gender_identity=rng.choice(["woman", "man", "non_binary"]),
            cultural_background=rng.sample(CULTURES, k=1),
            methods=rng.sample(list(Method), k=rng.randint(2, 4)),
            availability=_slots(rng),
            region=rng.choice(REGIONS),
            caseload_cap=rng.randint(1, 4),
            affiliations=(
                [Affiliation(name=rng.choice(RESPONDENTS), relationship="former employee")]
                if rng.random() < 0.15
                else []
            ),
        ),
    )


def vetting(rng: random.Random, supporter_id: str, today: date) -> list[RecordVettingEvidence]:
    issued = today - timedelta(days=rng.randint(30, 700))
    evidence = [
        RecordCheck(
            issued_on=issued,
            expires_on=issued + timedelta(days=730),
            clear=True,
            reference=f"RC-{rng.randint(100000, 999999)}",
        ),
        Interview(held_on=issued, passed=True),
        Reference(reference_type="professional", received_on=issued, satisfactory=True),
        Reference(reference_type="personal", received_on=issued, satisfactory=True),
        Recovery(since=issued - timedelta(days=rng.randint(200, 3000))),
        Training(course="peer_support_foundations", completed_on=issued + timedelta(days=14)),
        Supervision(session="supervision", attended_on=today - timedelta(days=rng.randint(1, 40))),
    ]
    return [RecordVettingEvidence(supporter_id=supporter_id, evidence=e) for e in evidence]


def intake(rng: random.Random, case_id: str, reachable: bool = False) -> SubmitIntake:
    """``reachable``: the client and the other party agreed to be emailed (the demo's)."""
    command = _intake(rng, case_id)
    if not reachable:
        return command
    client = command.client
    contact = Contact(
        email=f"{case_id}@clients.example.org", phone=client.contact.phone, may_contact=True
    )
    parties = [
        party.model_copy(
            update={
                "contact": Contact(
                    email=f"complaints@{party.name.split()[0].lower()}.example.com",
                    may_contact=True,
                )
            }
        )
        for party in command.other_parties
    ]
    return command.model_copy(
        update={"client": client.model_copy(update={"contact": contact}), "other_parties": parties}
    )


def _intake(rng: random.Random, case_id: str) -> SubmitIntake:
    methods = rng.sample(list(Method), k=rng.randint(1, 3))
    return SubmitIntake(
        case_id=case_id,
        client=ClientProfile(
            display_name=f"{rng.choice(FIRST_NAMES)} (client {case_id})",
            contact=Contact(phone=f"+64 21 {rng.randint(100000, 999999)}"),
            birth_year=rng.randint(1945, 2008),
            languages=sorted({rng.choice(LANGUAGES)}),
            access_needs=rng.sample(
                ["wheelchair_access", "large_print", "interpreter"], k=rng.randint(0, 1)
            ),
            gender_preference=(
                Preference(values=["woman"], strength=Strength.MUST) if rng.random() < 0.3 else None
            ),
            lived_experience_preference=Preference(values=[rng.choice(LIVED_EXPERIENCE)]),
            methods=methods,
            availability=_slots(rng),
            region=rng.choice(REGIONS),
            safety_concerns=["no_home_visits"] if rng.random() < 0.2 else [],
        ),
        dispute=Dispute(
            scheme=rng.choice(SCHEMES),
            summary="Dispute over repairs and a withheld bond.",
        ),
        other_parties=[
            OtherParty(
                party_id="respondent",
                kind="organisation",
                name=rng.choice(RESPONDENTS),
                role="respondent",
            )
        ],
        has_other_support=rng.random() < 0.3,
    )
