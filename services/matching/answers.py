"""A chosen supporter's answer to the client's choice (through their own page): they
agree, or they cannot take the client on, and the client is offered others (never them
again), as with a change of supporter. Pure, as ``decisions``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from contracts.matching import MatchEnded, SupporterAgreed
from contracts.records import CaseMatch
from runtime.changes import Change, Refused
from services.matching.decisions import BOUND, Client, Decision, Offered, again, changing, must_be


def chosen_by(match: CaseMatch | None, supporter_id: str) -> CaseMatch:
    """The match, if ``supporter_id`` is the supporter the client chose."""
    match = must_be(match, *BOUND)
    if match.supporter_id != supporter_id:
        raise Refused("supporter_id", "this client is not matched with this supporter")
    return match


def supporter_agrees(match: CaseMatch | None, supporter_id: str, now: datetime) -> Decision:
    match = chosen_by(match, supporter_id)
    if match.supporter_accepted:
        raise Refused("supporter_id", "you have already agreed to support this client")
    agreed = SupporterAgreed(case_id=match.case_id, supporter_id=supporter_id)
    return Change(
        match.model_copy(update={"supporter_accepted": True, "updated_at": now}), [agreed]
    )


def declining_client(match: CaseMatch | None, supporter_id: str) -> tuple[CaseMatch, list[str]]:
    return changing(chosen_by(match, supporter_id))


def decline_client(
    supporter_id: str,
) -> Callable[[CaseMatch | None, Client | None, Offered | None, datetime], Decision]:
    def decide(
        match: CaseMatch | None, client: Client | None, offered: Offered | None, now: datetime
    ) -> Decision:
        moved, leaving = declining_client(match, supporter_id)
        event = MatchEnded(
            case_id=moved.case_id, supporter_id=leaving[0], reason="supporter_declined"
        )
        return again(moved, leaving, event, client, offered, now)

    return decide
