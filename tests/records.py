"""Records made the way intake makes them (its pure domain), for tests that run without it."""

from __future__ import annotations

import random
from datetime import date, datetime, time
from typing import Any

from alongside import sample
from contracts.intake import (
    GiveConsent,
    Method,
    NameSupportPerson,
    PeerSupporter,
    Preference,
    Slot,
    Stage,
    Weekday,
)
from contracts.records import CaseRecord, SupporterRecord
from services.intake import domain as intake

EVENINGS = [Slot(day=d, start=time(17), end=time(21)) for d in Weekday]


def supporter(supporter_id: str, today: date, now: datetime, **profile: Any) -> SupporterRecord:
    """A supporter with every piece of vetting evidence, current as of ``today``; by default
    free every evening, by phone or video, speaking English, with no tie to anyone."""
    rng = random.Random(supporter_id)
    registered = sample.supporter(rng, supporter_id)
    defaults = {
        "methods": [Method.PHONE, Method.VIDEO],
        "availability": EVENINGS,
        "languages": ["en"],
        "affiliations": [],
    }
    changed = registered.profile.model_copy(update={**defaults, **profile})
    ctx = intake.Context(now=now)
    record = intake.register_supporter(
        registered.model_copy(update={"profile": changed}), None, ctx
    ).record
    for evidence in sample.vetting(rng, supporter_id, today):
        record = intake.record_vetting_evidence(evidence, record, ctx).record
    return record


def case(case_id: str, now: datetime, **client: Any) -> CaseRecord:
    """A client's intake; by default English-speaking, by phone, free on Tuesday evenings,
    an adult, with no hard preference beyond language."""
    submitted = sample.intake(random.Random(case_id), case_id)
    defaults = {
        "languages": ["en"],
        "methods": [Method.PHONE],
        "safety_concerns": [],
        "birth_year": 1980,
        "gender_preference": None,
        "cultural_preference": None,
        "lived_experience_preference": Preference(values=["tenancy_dispute"]),
        "availability": [Slot(day=Weekday.TUE, start=time(18), end=time(20))],
    }
    changed = submitted.client.model_copy(update={**defaults, **client})
    return intake.submit_intake(
        submitted.model_copy(update={"client": changed}), None, intake.Context(now=now)
    ).record


def consented(
    record: CaseRecord, supporter: SupporterRecord, today: date, now: datetime
) -> CaseRecord:
    """The supporter named as the case's support person, and every party's consent given."""
    named = NameSupportPerson(
        case_id=record.case_id, support_person=PeerSupporter(supporter_id=supporter.supporter_id)
    )
    record = intake.name_support_person(named, record, intake.Context(now, supporter)).record
    for party in record.party_ids:
        consent = GiveConsent(
            case_id=record.case_id, party_id=party, stages=[Stage.ENTRY], given_on=today
        )
        record = intake.give_consent(consent, record, intake.Context(now=now)).record
    return record
