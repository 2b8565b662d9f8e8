"""Matching's decisions on one case. Pure: no I/O.

Each function takes the case's matching state as it stands (``CaseMatch``, or None),
what the handler gathered (the client and their policy, whether every party consented)
and what it reserved (``Offered``: proposals whose supporters' slots it already holds
for this case), and returns the new state with its events (``Change``), nothing, or
raises ``Refused``. ``record.released`` names the holds this change gives up (every
decision sets it); the flush of its outbox releases them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from contracts.envelope import Event
from contracts.matching import (
    AcceptProposal,
    ClientWaitlisted,
    MatchActivated,
    MatchEnded,
    MatchPaused,
    MatchProposed,
    MatchResumed,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    ProposalsWithdrawn,
    ProposedSupporter,
    ServiceRefused,
)
from contracts.records import CaseMatch, CaseRecord, Offer
from contracts.replies import FieldError
from runtime.changes import Change, Refused
from services.matching import domain
from services.matching.domain import Policy, Proposal

Decision = Change[CaseMatch]
# The states in which a client is bound to their chosen supporter (who holds a slot for good).
BOUND = ("accepted", "active", "paused")


@dataclass(frozen=True)
class Client:
    case: CaseRecord
    policy: Policy

    @property
    def party_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.case.intake.other_parties)


@dataclass(frozen=True)
class Offered:
    """Proposals whose slots are held for the case, best first; or why there are none."""

    offers: list[Offer]
    waitlisted: domain.Waitlisted | None = None

    @property
    def why_none(self) -> domain.Waitlisted:
        """Why there are no offers: always the index's own answer (no place that fits is
        free), never a race lost to another client (that is retried, not reported)."""
        assert self.waitlisted is not None, "offers lost to a race are retried, not reported"
        return self.waitlisted

    @property
    def held(self) -> list[str]:
        return [o.supporter_id for o in self.offers]


def offer_of(proposal: Proposal, until: datetime) -> Offer:
    return Offer(
        supporter_id=proposal.supporter_id,
        score=round(proposal.score, 3),
        matched=list(proposal.matched),
        unmatched=list(proposal.unmatched),
        matched_on=list(proposal.matched_on),
        held_until=until,
    )


def holding(match: CaseMatch | None) -> set[str]:
    """The supporters whose slots the case holds in this state."""
    if match is None:
        return set()
    if match.status in BOUND:
        return {match.supporter_id} if match.supporter_id else set()
    return {o.supporter_id for o in match.proposals} if match.status == "proposed" else set()


def must_be(match: CaseMatch | None, *statuses: str) -> CaseMatch:
    if match is None:
        raise Refused("case_id", "nothing has been proposed for this case yet")
    if match.status not in statuses:
        wanted = " or ".join(statuses)
        raise Refused("case_id", f"the case's matching is {match.status}, not {wanted}")
    return match


# Proposals -------------------------------------------------------------------------------


def first_state(case_id: str, client: Client, now: datetime) -> CaseMatch:
    """A case's matching state before anything was proposed; an imported case waits for its
    batch to be assigned together."""
    batch = client.case.intake.import_batch
    return CaseMatch(
        case_id=case_id,
        status="awaiting_batch" if batch else "proposed",
        import_batch=batch,
        since=now,
        asked_at=client.case.opened_at,
        updated_at=now,
    )


def wants_offers(match: CaseMatch | None) -> bool:
    """A decided policy is acted on for a new case (not an imported one) or a waitlisted one."""
    return match is None or match.status == "waitlisted"


def on_policy(
    match: CaseMatch | None,
    case_id: str,
    client: Client | None,
    offered: Offered | None,
    now: datetime,
) -> Decision | None:
    """A client's first proposals; a waitlisted client whose policy changed tries again."""
    if not wants_offers(match) or client is None:
        return None
    if match is None:
        match = first_state(case_id, client, now)
        if match.status == "awaiting_batch":
            return Change(match, [])
    return offers_or_waitlist(match, offered, now) if offered is not None else None


def offers_or_waitlist(match: CaseMatch, offered: Offered, now: datetime) -> Decision | None:
    if offered.offers:
        return proposed(match, offered.offers, now)
    return waitlisted(match, offered.why_none, now)


def proposed(match: CaseMatch, offers: list[Offer], now: datetime) -> Decision:
    record = match.model_copy(
        update={
            "status": "proposed",
            "round": match.round + 1,
            "proposals": offers,
            "waitlist_reason": None,
            "since": now,
            "released": [],
        }
    )
    event = MatchProposed(
        case_id=match.case_id,
        round=record.round,
        proposals=[
            ProposedSupporter(
                supporter_id=o.supporter_id,
                score=o.score,
                matched_on=o.matched_on,
                held_until=o.held_until,
            )
            for o in offers
        ],
    )
    return Change(record, [event])


def waitlisted(match: CaseMatch, why: domain.Waitlisted, now: datetime) -> Decision | None:
    if match.status == "waitlisted" and match.waitlist_reason == why.reason:
        return None  # still waiting for the same reason: nothing new to say
    since = match.since if match.status == "waitlisted" else now
    record = match.model_copy(
        update={
            "status": "waitlisted",
            "proposals": [],
            "waitlist_reason": why.reason,
            "since": since,
            "released": [],
        }
    )
    return Change(record, [ClientWaitlisted(case_id=match.case_id, constraint=why.constraint)])


def retry(match: CaseMatch | None, offered: Offered | None, now: datetime) -> Decision | None:
    """A waitlisted client, offered whoever became eligible or free."""
    if match is None or match.status != "waitlisted" or offered is None:
        return None
    return offers_or_waitlist(match, offered, now)


def expire(match: CaseMatch | None, now: datetime) -> Decision | None:
    """Proposals the client did not answer in time give their slots back."""
    if match is None or match.status != "proposed":
        return None
    if any(o.held_until > now for o in match.proposals):
        return None
    gone = [o.supporter_id for o in match.proposals]
    record = match.model_copy(update={"status": "expired", "since": now, "released": gone})
    return Change(record, [ProposalsExpired(case_id=match.case_id, supporter_ids=gone)])


# The client's choices ------------------------------------------------------------------


def accept(
    match: CaseMatch | None,
    command: AcceptProposal,
    held_for_good: bool,
    consented: bool,
    unfit: list[FieldError],
    now: datetime,
) -> Decision:
    """``unfit``: why the chosen supporter may not be bound to anyone now (the rules'
    reasons), checked at the moment of the choice, not only when the list was made."""
    match = must_be(match, "proposed", "expired")
    offer = next((o for o in match.proposals if o.supporter_id == command.supporter_id), None)
    if offer is None:
        raise Refused("supporter_id", "this supporter was not proposed to this client")
    if unfit:
        raise Refused.each(unfit)
    if not held_for_good:
        raise Refused("supporter_id", "the proposal expired and the supporter has no free slot now")
    others = [o.supporter_id for o in match.proposals if o is not offer]
    record = match.model_copy(
        update={
            "status": "accepted",
            "supporter_id": offer.supporter_id,
            "proposals": [offer],
            "since": now,
            "released": others,
        }
    )
    events: list[Event] = [
        ProposalAccepted(
            case_id=match.case_id, supporter_id=offer.supporter_id, released_supporter_ids=others
        )
    ]
    if consented:
        record = record.model_copy(update={"status": "active"})
        events.append(MatchActivated(case_id=match.case_id, supporter_id=offer.supporter_id))
    return Change(record, events)


def moving_on(match: CaseMatch, leaving: list[str]) -> CaseMatch:
    """The state new proposals are sought for: never again naming who the client leaves."""
    return match.model_copy(
        update={
            "excluded": [*match.excluded, *leaving],
            "supporter_id": None,
            "supporter_accepted": False,
            "proposals": [],
            "status": "expired",
        }
    )


def declining(match: CaseMatch | None) -> tuple[CaseMatch, list[str]]:
    """Who a decline leaves, and the state it seeks new proposals for."""
    match = must_be(match, "proposed", "expired")
    leaving = [o.supporter_id for o in match.proposals]
    return moving_on(match, leaving), leaving


def changing(match: CaseMatch | None) -> tuple[CaseMatch, list[str]]:
    """Who a change of supporter leaves, and the state it seeks new proposals for."""
    match = must_be(match, *BOUND)
    assert match.supporter_id is not None
    return moving_on(match, [match.supporter_id]), [match.supporter_id]


def decline(
    reason: str | None,
) -> Callable[[CaseMatch | None, Client | None, Offered | None, datetime], Decision]:
    def decide(
        match: CaseMatch | None, client: Client | None, offered: Offered | None, now: datetime
    ) -> Decision:
        moved, leaving = declining(match)
        moved = moved.model_copy(update={"declined_because": reason})
        event = ProposalsDeclined(case_id=moved.case_id, supporter_ids=leaving)
        return again(moved, leaving, event, client, offered, now)

    return decide


def change_supporter(
    match: CaseMatch | None, client: Client | None, offered: Offered | None, now: datetime
) -> Decision:
    moved, leaving = changing(match)
    event = MatchEnded(case_id=moved.case_id, supporter_id=leaving[0], reason="change_of_supporter")
    return again(moved, leaving, event, client, offered, now)


def again(
    moved: CaseMatch,
    leaving: list[str],
    event: Event,
    client: Client | None,
    offered: Offered | None,
    now: datetime,
) -> Decision:
    if client is None or offered is None:
        raise Refused("case_id", "the case or its matching policy is no longer available")
    change = offers_or_waitlist(moved, offered, now)
    assert change is not None  # from "expired", even the waitlist is news
    record = change.record.model_copy(update={"released": leaving})
    return Change(record, [event, *change.events])


def refuse(match: CaseMatch | None, case_id: str, case_exists: bool, now: datetime) -> Decision:
    if match is None:
        if not case_exists:
            raise Refused("case_id", "there is no such case in this organisation")
        match = CaseMatch(case_id=case_id, status="refused", since=now, updated_at=now)
    elif match.status == "refused":
        raise Refused("case_id", "the client already refused the service")
    elif match.status == "completed":
        raise Refused("case_id", "the service has already come to its end")
    released = [o.supporter_id for o in match.proposals]
    if match.supporter_id and match.supporter_id not in released:
        released.append(match.supporter_id)
    events: list[Event] = []
    if match.supporter_id:
        events.append(
            MatchEnded(
                case_id=match.case_id, supporter_id=match.supporter_id, reason="service_refused"
            )
        )
    events.append(ServiceRefused(case_id=match.case_id, released_supporter_ids=released))
    record = match.model_copy(
        update={
            "status": "refused",
            "proposals": [],
            "supporter_id": None,
            "since": now,
            "released": released,
        }
    )
    return Change(record, events)


# Consent and the end of the service ----------------------------------------------------


def activate(match: CaseMatch | None, consented: bool, fit: bool, now: datetime) -> Decision | None:
    """Every party consented to the chosen supporter, who is still fit to support: the match
    becomes active. (An unfit supporter's match is paused, and resumes only on review.)"""
    if match is None or match.status != "accepted" or not consented or not fit:
        return None
    assert match.supporter_id is not None
    event = MatchActivated(case_id=match.case_id, supporter_id=match.supporter_id)
    record = match.model_copy(update={"status": "active", "since": now, "released": []})
    return Change(record, [event])


def complete(match: CaseMatch | None, supporter_id: str) -> Decision | None:
    """The funded service ended (paused or not): the supporter's slot is free for someone
    else."""
    if (
        match is None
        or match.status not in ("active", "paused")
        or match.supporter_id != supporter_id
    ):
        return None
    event = MatchEnded(case_id=match.case_id, supporter_id=supporter_id, reason="service_completed")
    record = match.model_copy(update={"status": "completed", "released": [supporter_id]})
    return Change(record, [event])


def erase(match: CaseMatch | None, now: datetime) -> Decision | None:
    """The client was erased: every slot the case holds goes back, and nothing of theirs is
    kept (their proposals' explanations, why they waited); ids, dates and outcomes stay."""
    if match is None or match.status == "erased":
        return None
    released = sorted(holding(match))
    events: list[Event] = []
    if match.status in BOUND and match.supporter_id:
        events.append(
            MatchEnded(
                case_id=match.case_id, supporter_id=match.supporter_id, reason="client_erased"
            )
        )
    record = match.model_copy(
        update={
            "status": "erased",
            "proposals": [],
            "waitlist_reason": None,
            "since": now,
            "released": released,
        }
    )
    return Change(record, events)


# A supporter who may no longer be matched ----------------------------------------------


def withdrawing(match: CaseMatch | None, supporter_id: str) -> CaseMatch | None:
    """The state fresh proposals are sought for when ``supporter_id`` is taken out of the
    case's open proposals (the others stay); None when the case has none of theirs open."""
    if match is None or match.status not in ("proposed", "expired"):
        return None
    if all(o.supporter_id != supporter_id for o in match.proposals):
        return None
    kept = [o for o in match.proposals if o.supporter_id != supporter_id]
    return match.model_copy(update={"proposals": kept})


def withdraw(
    match: CaseMatch | None, supporter_id: str, fresh: Offered | None, now: datetime
) -> Decision | None:
    """Take an unfit supporter out of the client's open proposals, with a reason (an event),
    and offer the client fresh ones in their place; waitlisted, with why, if nobody is left.
    Never excluded for good: the client did not decline them. Expired proposals are only
    taken out (the client's time to choose is over)."""
    moved = withdrawing(match, supporter_id)
    if match is None or moved is None:
        return None
    withdrawn = ProposalsWithdrawn(case_id=match.case_id, supporter_ids=[supporter_id])
    if match.status == "expired":
        return Change(moved.model_copy(update={"released": [supporter_id]}), [withdrawn])
    assert fresh is not None
    offers = [*moved.proposals, *fresh.offers]
    change = proposed(moved, offers, now) if offers else waitlisted(moved, fresh.why_none, now)
    assert change is not None  # from "proposed", either is news
    record = change.record.model_copy(update={"released": [supporter_id]})
    return Change(record, [withdrawn, *change.events])


def pause(match: CaseMatch | None, supporter_id: str, now: datetime) -> Decision | None:
    """The chosen supporter of an accepted or active match became unfit: the match waits for
    a coordinator's review, keeping its slot; it is not ended silently."""
    if match is None or match.status not in ("accepted", "active"):
        return None
    if match.supporter_id != supporter_id:
        return None
    record = match.model_copy(
        update={"status": "paused", "paused_from": match.status, "since": now, "released": []}
    )
    return Change(record, [MatchPaused(case_id=match.case_id, supporter_id=supporter_id)])


def resume(
    match: CaseMatch | None, unfit: list[FieldError], consented: bool, now: datetime
) -> Decision:
    """A coordinator's review: the paused match goes on with the same supporter, once they
    are fit again (else refused with the rules' reasons); an accepted match whose parties
    have all consented meanwhile becomes active."""
    match = must_be(match, "paused")
    if unfit:
        raise Refused.each(unfit)
    assert match.supporter_id is not None
    status = match.paused_from or "active"
    events: list[Event] = [MatchResumed(case_id=match.case_id, supporter_id=match.supporter_id)]
    if status == "accepted" and consented:
        status = "active"
        events.append(MatchActivated(case_id=match.case_id, supporter_id=match.supporter_id))
    record = match.model_copy(
        update={"status": status, "paused_from": None, "since": now, "released": []}
    )
    return Change(record, events)
