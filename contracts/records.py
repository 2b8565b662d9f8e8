"""Current state kept in KV: what intake stores and other services of the organisation read.

Key ``<org>.<id>`` in the bucket named in ``alongside/runtime/topology.py``.
These hold personal data; they never travel in events.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.intake import (
    CLIENT_PARTY_ID,
    Stage,
    SubmitIntake,
    SupporterProfile,
    SupportPerson,
    VettingEvidence,
)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupporterRecord(Record):
    supporter_id: str
    profile: SupporterProfile
    suspended: bool = False
    vetting: list[VettingEvidence] = []
    registered_at: datetime
    updated_at: datetime


class ConsentRecord(Record):
    party_id: str
    status: Literal["given", "withdrawn"]
    stages: list[Stage]
    on: date
    # Consent is to a particular support person: naming another one needs it again.
    support_person_ref: str


class CaseRecord(Record):
    case_id: str
    intake: SubmitIntake
    stage: Stage
    support_person: SupportPerson | None = None
    consents: dict[str, ConsentRecord] = {}
    opened_at: datetime
    updated_at: datetime

    @property
    def party_ids(self) -> list[str]:
        return [CLIENT_PARTY_ID, *(p.party_id for p in self.intake.other_parties)]
