"""Gathering, reserving and committing one case's decision.

A decision's inputs are gathered (the client and their policy, consent) and what it needs is
reserved before committing: new proposals first *hold* their supporters' slots, by
compare-and-set on each caseload, refused when every slot is taken, so no replica ever
proposes a supporter beyond their free slots. Then the pure decision is committed with its
outbox (``on_case``), only on the very state it was gathered for: if the case moved on
meanwhile, what was reserved goes back and it is gathered again. Holds a committed change
gives up are released when its outbox is flushed (``holds_releaser``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from contracts.intake import PeerSupporter
from contracts.matching import ClientWaitlisted
from contracts.records import CaseMatch, Offer
from contracts.replies import CommandAccepted, CommandRejected, FieldError
from contracts.rules import Kind, RulesDecision, unfit_reasons
from runtime.changes import Change, Contended, Stale
from runtime.dispatch import Received
from runtime.logging import get_logger
from runtime.store import RecordStore, Stored
from runtime.unit import Outcome
from runtime.vault import unless_erased
from services.matching import decisions, domain
from services.matching.adapters import CaseloadStore
from services.matching.decisions import Client, Offered
from services.matching.deps import MatchingDeps
from services.matching.domain import Policy, SupporterIndex
from services.matching.turns import FIRST, Turns

log = get_logger(__name__)

# Rounds of fresh candidates an offer tries when others take the places it tried first.
OFFER_ROUNDS = 10

Reply = CommandAccepted | CommandRejected
In = TypeVar("In")


async def client_of(
    org: str, case_id: str, deps: MatchingDeps, announced_at: datetime | None = None
) -> Client | None:
    """The case and its matching policy; None until the rules service has decided the policy,
    and for a client erased. ``announced_at``: the time of an event announcing the policy,
    which the policy read must not be older than (else ``NotYet``: the event is looked at
    again later)."""
    decision: RulesDecision | None
    if announced_at is not None:
        decision = await deps.decisions.announced(org, Kind.MATCHING_POLICY, case_id, announced_at)
    else:
        decision, _ = await deps.decisions.get(org, Kind.MATCHING_POLICY, case_id)
    case = await unless_erased(deps.records.case(org, case_id))
    if case is None or decision is None:
        return None
    return Client(case, Policy.from_fired(decision.fired))


async def consented(org: str, case_id: str, supporter_id: str | None, deps: MatchingDeps) -> bool:
    """Every party consented to this supporter (consent is to a named support person)."""
    decision, _ = await deps.decisions.get(org, Kind.CONSENT, case_id)
    case = await deps.records.case(org, case_id)
    person = case.support_person if case else None
    return (
        supporter_id is not None
        and decision is not None
        and decision.outcome == "active"
        and isinstance(person, PeerSupporter)
        and person.supporter_id == supporter_id
    )


async def unfit(org: str, supporter_id: str, deps: MatchingDeps) -> list[FieldError]:
    """Why the supporter may not be bound to a client now (the rules' reasons), as decided
    last; empty when they may."""
    decision, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, supporter_id)
    return unfit_reasons(decision)


async def offer(
    org: str,
    match: CaseMatch,
    client: Client,
    deps: MatchingDeps,
    now: datetime,
    want: int | None = None,
    besides: Collection[str] = (),
) -> Offered:
    """Up to ``want`` (K) proposals, each holding a slot (the reservation), never naming
    ``besides``; or why there are none. A slot taken meanwhile by another client is made
    up from the next in line, as the index then knows it, until enough are held or the index
    has nobody left: a client is waitlisted only when no place that fits them is free, never
    for a race lost."""
    policy = client.policy
    want = policy.proposals if want is None else want
    index = deps.supporters.index(org).index
    until = now + timedelta(days=policy.hold_days)
    offers: list[Offer] = []
    tried = {*match.excluded, *besides}
    try:
        for _ in range(OFFER_ROUNDS):
            if len(offers) >= want:
                return Offered(offers)
            result = domain.propose(index, policy, want - len(offers), client.party_names, tried)
            if isinstance(result, domain.Waitlisted):
                return Offered(offers, None if offers else result)
            # The holds are taken at once (each is its own supporter's write); a refused one
            # marks that supporter full in the index, so the next round passes them by.
            outcomes = await asyncio.gather(
                *(
                    hold(org, p.supporter_id, match.case_id, until, deps, now, index)
                    for p in result
                ),
                return_exceptions=True,
            )
            tried.update(p.supporter_id for p in result)
            won = [p for p, held in zip(result, outcomes, strict=True) if held is True]
            offers += [decisions.offer_of(p, until) for p in won]
            failed = [error for error in outcomes if isinstance(error, BaseException)]
            if failed:
                raise failed[0]
    except BaseException:
        await give_back(org, match.case_id, [o.supporter_id for o in offers], deps)
        raise
    if offers:
        return Offered(offers)
    # Every round lost every race: looked at again shortly, rather than told to wait.
    raise Contended(f"{org}.{match.case_id}: every place tried was taken meanwhile")


async def hold(
    org: str,
    supporter_id: str,
    case_id: str,
    until: datetime | None,
    deps: MatchingDeps,
    now: datetime,
    index: SupporterIndex | None = None,
) -> bool:
    """Hold a slot; the index deciding who comes next learns of it at once."""
    return case_id in await hold_each(org, supporter_id, {case_id: until}, deps, now, index)


async def hold_each(
    org: str,
    supporter_id: str,
    wanted: Mapping[str, datetime | None],
    deps: MatchingDeps,
    now: datetime,
    index: SupporterIndex | None = None,
) -> set[str]:
    """Hold one of the supporter's slots for each case of ``wanted`` (case -> until) while
    they last, in one write; the cases held. The index learns of it at once."""
    cap = deps.supporters.cap(org, supporter_id)
    # The store tells the index at once (a refused hold too: that supporter is full, and the
    # next round passes them by); the watch says so later.
    held, _, caseload, _ = await deps.caseloads.hold_each(org, supporter_id, wanted, cap, now)
    index = index or deps.supporters.index(org).index
    i = index.position.get(supporter_id)
    if i is not None:  # an index being used while its rows change is told here
        index.free[i] = max(cap - caseload.taken(now), 0)
    return held


async def give_back(org: str, case_id: str, held: Sequence[str], deps: MatchingDeps) -> None:
    """Holds reserved for a decision that was not committed, unless the case's current state
    keeps them."""
    if not held:
        return
    stored, _ = await deps.matches.load(org, case_id)
    kept = decisions.holding(stored.record if stored else None)
    released = [supporter_id for supporter_id in held if supporter_id not in kept]
    if released:
        async with deps.turns.offering(org).turn(FIRST):
            for supporter_id in released:
                await deps.caseloads.release(org, supporter_id, case_id)
    if released and deps.standings.anyone_waiting(org):
        # No event will say these places are free again: the waiting are offered them now,
        # apart from this handler (which may be failing). The waitlist builds on offering:
        # this one call back up to it is imported when it is made, not with this module.
        from services.matching.waitlist import serve_the_waiting

        deps.turns.later(serve_the_waiting(org, deps), f"waitlist_retry {org}")


def holds_releaser(
    caseloads: CaseloadStore, matches: RecordStore[CaseMatch], turns: Turns
) -> Callable[[str, str, Stored[CaseMatch]], Awaitable[None]]:
    """What a committed change does besides its events: give up the holds it released (run on
    every flush of its outbox, so a crash in between is completed). A hold the case has taken
    again since (an expired proposal accepted after all) is kept. Places open in a turn of
    their own: never while a client is being offered places or waitlisted."""

    async def release_holds(org: str, case_id: str, stored: Stored[CaseMatch]) -> None:
        match = stored.record
        if not match.released:
            return
        latest, _ = await matches.load(org, case_id)
        held_now = decisions.holding(latest.record if latest else None)
        async with turns.offering(org).turn(FIRST):
            for supporter_id in match.released:
                if supporter_id not in held_now:
                    await caseloads.release(org, supporter_id, case_id)

    return release_holds


# Committing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gathered(Generic[In]):
    """What a matching decision was gathered for: the case's state as seen, the places the
    index had opened by then, the inputs, and the slots held for them."""

    seen: CaseMatch | None
    opened: int
    inputs: In
    held: list[str]


async def on_case(
    org: str,
    case_id: str,
    deps: MatchingDeps,
    gather: Callable[[CaseMatch | None], Awaitable[tuple[In, list[str]]]],
    decide: Callable[[CaseMatch | None, In], Change[CaseMatch] | Stale | None],
    received: Received | None = None,
) -> Reply | None:
    """Gather (and reserve) for the case's state as it is, decide purely, commit: only on
    that very state, else what was reserved goes back and it is gathered again. ``gather``
    returns its inputs and the holds it took."""

    async def gathering(seen: CaseMatch | None) -> Gathered[In]:
        opened = deps.supporters.index(org).opened
        inputs, held = await gather(seen)
        return Gathered(seen, opened, inputs, held)

    async def release(gathered: Gathered[In]) -> None:
        # Nothing holds a slot for a decision that was not committed (give_back keeps what
        # the case's current state holds).
        await give_back(org, case_id, gathered.held, deps)

    def pure(current: CaseMatch | None, got: Gathered[In]) -> Change[CaseMatch] | Stale | None:
        if current != got.seen:
            return Stale("another change came first: what was reserved may not fit")
        change = decide(current, got.inputs)
        if change is None or isinstance(change, Stale):
            return change
        if (
            any(isinstance(e, ClientWaitlisted) for e in change.events)
            and deps.supporters.index(org).opened != got.opened
        ):
            return Stale("a place may have opened since the index said none was free")
        record = change.record.model_copy(update={"updated_at": deps.clock()})
        log.info("matching_changed", org=org, case_id=case_id, status=record.status)
        return Change(record, change.events)

    outcome: Outcome[CaseMatch] = await deps.unit.change(
        org, case_id, pure, gather=gathering, release=release, command=received
    )
    if outcome.committed and outcome.record is not None:
        # Known here at once, before the watch says so: who waits, and since when.
        deps.standings.note(org, case_id, outcome.record)
    return outcome.reply


async def nothing(_: CaseMatch | None) -> tuple[None, list[str]]:
    return None, []
