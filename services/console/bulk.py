"""Actions on many cases at once, from the cases list: what a day needs done to a batch
(a tribunal moves its cases to the next stage; the other party's signed consents arrive
together). Each case's command is sent on its own, with an id made from the form's, so a
form sent twice acts once; what each came to is shown case by case. Pure: which commands
to send, and the outcomes in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from contracts.console import Problem
from services.console.labels import plain
from services.console.overview_state import OverviewState

BulkAction = Literal["ChangeCaseStage", "GiveConsent"]
BULK_ACTIONS: tuple[BulkAction, ...] = ("ChangeCaseStage", "GiveConsent")
MOST = 50  # cases in one bulk action: a page of the list


@dataclass(frozen=True)
class Sending:
    """One command of a bulk action: for which case, what it does in words, its body."""

    case_id: str
    what: str
    type_name: str
    body: dict[str, Any]


def sendings(
    kept: OverviewState, action: BulkAction, case_ids: list[str], stage: str, given_on: date
) -> list[Sending]:
    """The commands ``action`` makes for each case: a stage change each; a consent for
    each party whose consent is missing, for the case's stage (none if none is)."""
    sent = []
    for case_id in case_ids:
        if action == "ChangeCaseStage":
            words = f"Moved to the stage: {plain(stage, 'stage')}"
            body: dict[str, Any] = {"case_id": case_id, "stage": stage}
            sent.append(Sending(case_id, words, action, body))
            continue
        case = kept.cases.get(case_id)
        if case is None or case.consent is None:
            continue  # nothing missing: nothing to record
        consent = case.consent
        for party_id in consent.missing_party_ids:
            words = f"Consent of {plain(party_id, 'party')} recorded, given on {given_on:%d %B %Y}"
            body = {
                "case_id": case_id,
                "party_id": party_id,
                "stages": [consent.stage],
                "given_on": given_on.isoformat(),
            }
            sent.append(Sending(case_id, words, action, body))
    return sent


def outcome(refused: Problem | None) -> str:
    """What one command came to, in words."""
    if refused is None:
        return "Done"
    reasons = "; ".join(f"{e.label}: {e.reason}" if e.label else e.reason for e in refused.errors)
    return f"Not done: {reasons or refused.detail}"
