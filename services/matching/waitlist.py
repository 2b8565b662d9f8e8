"""Free places taken in turn: the waiting first, longest waiting first, then new clients in
the order they asked.

New clients' first offers and waitlist retries take an organisation's places one at a time
(``Turns.offering``): a later client never passes someone who asked earlier and waits. A
retry runs when a place opened since the waiting last had their turn (``_owed``)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from contracts.records import CaseMatch
from runtime.changes import Change, Stale
from runtime.vault import unless_erased
from services.matching import decisions
from services.matching.adapters import match_records
from services.matching.batch_offers import offer_together
from services.matching.decisions import Client, Offered
from services.matching.deps import MatchingDeps
from services.matching.offering import client_of, offer, on_case
from services.matching.turns import FIRST

# Free places (of eligible supporters) above which first offers need no turn: far more than
# the clients offered at once could take, so none of them can be passed over.
PLENTY = 256
# Waitlist retries run back to back when more were asked for meanwhile (then the next event
# or the sweep asks again).
MAX_WAITLIST_ROUNDS = 5


async def first_offer(
    org: str, case_id: str, deps: MatchingDeps, announced_at: datetime | None = None
) -> None:
    """A client's first proposals once their policy is decided (or, for an import, wait for
    the batch); a waitlisted client whose policy changed tries again. ``announced_at``: the
    time of the event announcing the policy, which must not be newer than the policy read.
    Those who asked earlier and wait are served first: a later client never passes them."""
    now = deps.clock()
    index = deps.supporters.index(org)

    async def gather(
        seen: CaseMatch | None,
    ) -> tuple[tuple[Client | None, Offered | None, int], list[str]]:
        if not decisions.wants_offers(seen):
            return (None, None, index.opened), []
        # Never act on a policy older than the event that announced it.
        client = await client_of(org, case_id, deps, announced_at)
        if client is None:
            return (None, None, index.opened), []
        match = seen or decisions.first_state(case_id, client, now)
        if match.status == "awaiting_batch":
            return (client, None, index.opened), []
        if not _owed(org, deps) and _free_places(org, deps) >= PLENTY:
            # Room for everyone asking at once, and no place the waiting were not offered yet:
            # nobody can be passed, no turn is needed.
            served = index.opened
            offered = await offer(org, match, client, deps, now)
            return (client, offered, served), offered.held
        # Places are taken in turn, in the order clients asked, the waiting first.
        async with deps.turns.offering(org).turn(client.case.opened_at):
            if _owed(org, deps) and _room(org, deps):
                await _waitlist_rounds(org, deps)
            served = index.opened  # the places open now, after the waiting had their turn
            offered = await offer(org, match, client, deps, now)
        return (client, offered, served), offered.held

    def decide(
        match: CaseMatch | None, got: tuple[Client | None, Offered | None, int]
    ) -> Change[CaseMatch] | Stale | None:
        client, offered, served = got
        if (
            offered
            and offered.offers
            and index.opened != served
            and deps.standings.anyone_waiting(org)
        ):
            return Stale("a place opened meanwhile: the waiting have their turn at it first")
        return decisions.on_policy(match, case_id, client, offered, now)

    if not _owed(org, deps) and _free_places(org, deps) >= PLENTY:
        await on_case(org, case_id, deps, gather, decide)
        return
    # Few places: the whole decision, its commit included, in the client's turn, so that no
    # place opens between a waitlisting and its being stored.
    case = await unless_erased(deps.records.case(org, case_id))
    async with deps.turns.offering(org).turn(case.opened_at if case else now):
        await on_case(org, case_id, deps, gather, decide)


async def serve_the_waiting(org: str, deps: MatchingDeps) -> None:
    """Waitlisted clients try again, longest waiting first, when a place may be free for them
    (the index has an eligible supporter with a free slot; who fits whom, the offer decides)."""
    if _room(org, deps):
        await retry_waitlist(org, deps)  # which asks first whether a place is owed


def _room(org: str, deps: MatchingDeps) -> bool:
    """Whether the index has an eligible supporter with a free slot."""
    index = deps.supporters.index(org).index
    return bool((index.eligible & (index.free > 0)).any())


def _owed(org: str, deps: MatchingDeps) -> bool:
    """Whether someone waits and a place opened since the waiting last had their turn: after
    a round, no waiting client fits any place then free (else they would have it)."""
    opened = deps.supporters.index(org).opened
    return deps.standings.anyone_waiting(org) and deps.turns.served.get(org) != opened


def _free_places(org: str, deps: MatchingDeps) -> int:
    """Free slots of eligible supporters, as the index says."""
    index = deps.supporters.index(org).index
    return int(index.free[index.eligible].clip(min=0).sum())


async def retry_waitlist(org: str, deps: MatchingDeps, read_all: bool = False) -> None:
    """Offer waitlisted clients whoever became eligible or free, longest waiting first. The
    waiting are those the standings name (kept by a watch and by this process's commits);
    ``read_all``: every record read instead (the sweep, in case a watch missed one). While a
    retry of the organisation runs, another asked for becomes one more round of it."""
    turns = deps.turns
    if not read_all and not _owed(org, deps):
        return  # no place opened since the waiting last had their turn
    if org in turns.running:
        turns.again.add(org)
        await asyncio.shield(turns.running[org])
        return
    ended = turns.running[org] = asyncio.get_running_loop().create_future()
    try:
        async with turns.offering(org).turn(FIRST):
            await _waitlist_rounds(org, deps, read_all)
    finally:
        del turns.running[org]
        turns.again.discard(org)
        ended.set_result(None)


async def _waitlist_rounds(org: str, deps: MatchingDeps, read_all: bool = False) -> None:
    """Rounds of the waitlist, as long as another was asked for meanwhile (a retry asked
    for, a place opened part way down the list), up to ``MAX_WAITLIST_ROUNDS``."""
    for _ in range(MAX_WAITLIST_ROUNDS):
        deps.turns.again.discard(org)
        await _retry_waitlist_once(org, deps, read_all)
        if org not in deps.turns.again:
            return


async def _retry_waitlist_once(org: str, deps: MatchingDeps, read_all: bool) -> None:
    # Every place open from here on is offered to the waiting in this round.
    deps.turns.served[org] = deps.supporters.index(org).opened
    if read_all or not deps.standings.watching:
        found = [
            (stored, revision) for _, stored, revision in await match_records(deps.matches, org)
        ]
    else:
        loaded = [await deps.matches.load(org, case_id) for case_id in deps.standings.waiting(org)]
        found = [(stored, revision) for stored, revision in loaded if stored is not None]
    # In the order they asked: a client waitlisted later may have asked earlier.
    waiting = sorted(
        ((stored, revision) for stored, revision in found if stored.record.status == "waitlisted"),
        key=lambda item: item[0].record.turn,
    )
    if len(waiting) > 1:
        await offer_together(org, waiting, deps, in_order=True)
    elif waiting:
        await _retry(org, waiting[0][0].record.case_id, deps)


async def _retry(org: str, case_id: str, deps: MatchingDeps) -> None:
    now = deps.clock()

    async def gather(seen: CaseMatch | None) -> tuple[Offered | None, list[str]]:
        if seen is None or seen.status != "waitlisted":
            return None, []
        client = await client_of(org, case_id, deps)
        if client is None:
            return None, []
        offered = await offer(org, seen, client, deps, now)
        return offered, offered.held

    await on_case(org, case_id, deps, gather, lambda m, got: decisions.retry(m, got, now))
