"""Many clients offered places at once: an import's batch, and a round of the waitlist.

Every client gets a first proposal before anyone gets a second: one global assignment
(``batch.assign``) per round, its supporters' slots held a write per supporter; what was
chosen is then committed case by case, and the clients left without are offered places one
by one."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar, cast

from contracts.records import CaseMatch, Offer
from runtime.logging import get_logger
from runtime.store import Stored
from services.matching import batch, decisions, domain
from services.matching.decisions import Client, Offered
from services.matching.deps import MatchingDeps
from services.matching.domain import LiveIndex, SupporterIndex
from services.matching.offering import client_of, give_back, hold_each, offer, on_case

log = get_logger(__name__)

# Assignments a round tries: a hold refused (the index lagging the caseloads) leaves a client out.
ROUND_ATTEMPTS = 5
# Cases (and supporters) a batch reads, holds or commits at once.
BATCH_IN_FLIGHT = 32

T = TypeVar("T")
U = TypeVar("U")


async def offer_together(
    org: str,
    cases: Sequence[tuple[Stored[CaseMatch], int]],
    deps: MatchingDeps,
    in_order: bool = False,
) -> None:
    """Every client a first proposal before anyone gets a second: one global assignment
    (``batch.assign``) per round, scarce needs first; the rest are offered one by one,
    longest waiting first. ``in_order`` (the waitlist): the cases' order, as they asked, comes
    before the scores. Reads, holds (one write per supporter a round) and commits for
    different cases and supporters go ``BATCH_IN_FLIGHT`` at a time."""
    now = deps.clock()
    case_ids = [s.record.case_id for s, _ in cases]
    read = await _each(case_ids, lambda case_id: client_of(org, case_id, deps))
    clients = dict(zip(case_ids, read, strict=True))
    matches = {s.record.case_id: s.record for s, _ in cases}
    index_of = deps.supporters.index(org)
    together = _Together(org, deps, now, in_order, clients, index_of.index, defaultdict(list))
    for round_ in range(max((c.policy.proposals for c in clients.values() if c), default=0)):
        await _assign_round(together, _requests(together, matches, round_))
    offered = [stored.record for stored, _ in cases if together.chosen.get(stored.record.case_id)]
    await _settle_chosen(together, offered)
    await _offer_the_rest(together, cases, index_of)


@dataclass(frozen=True)
class _Together:
    """What the steps of one ``offer_together`` share: the clients as read (None: not
    readable), the index the assignments read, and the offers chosen so far."""

    org: str
    deps: MatchingDeps
    now: datetime
    in_order: bool
    clients: dict[str, Client | None]
    index: SupporterIndex
    chosen: defaultdict[str, list[Offer]]

    def until(self, case_id: str) -> datetime:
        client = self.clients[case_id]
        assert client is not None
        return self.now + timedelta(days=client.policy.hold_days)


def _requests(
    together: _Together, matches: Mapping[str, CaseMatch], round_: int
) -> list[batch.Request]:
    """Who asks in this round: the clients with an offer for every round before, and wanting
    more; never again a supporter excluded or already chosen for them."""
    chosen = together.chosen
    return [
        batch.Request(
            case_id,
            client.policy,
            client.party_names,
            frozenset(matches[case_id].excluded) | {o.supporter_id for o in chosen[case_id]},
        )
        for case_id, client in together.clients.items()
        if client and len(chosen[case_id]) == round_ < client.policy.proposals
    ]


async def _assign_round(together: _Together, requests: list[batch.Request]) -> None:
    """One round: every client asking is assigned one more supporter, whose slot is held.
    The index may lag the caseloads (its watch): a refused hold marks that supporter full
    and the clients it left out are assigned again."""
    for _ in range(ROUND_ATTEMPTS):
        if not requests:
            break
        assignment = batch.assign(together.index, requests, in_order=together.in_order)
        refused = await _hold_assigned(together, assignment)
        requests = [r for r in requests if r.client_id in refused]


async def _hold_assigned(together: _Together, assignment: batch.Assignment) -> set[str]:
    """Hold the assigned supporters' slots, one write per supporter; each offer held is
    chosen. Returns the clients whose hold was refused."""
    org, deps, now, index = together.org, together.deps, together.now, together.index
    by_supporter: dict[str, list[str]] = defaultdict(list)
    for case_id, supporter_id in assignment.chosen.items():
        by_supporter[supporter_id].append(case_id)
    wanted = {
        supporter_id: {c: together.until(c) for c in case_ids}
        for supporter_id, case_ids in by_supporter.items()
    }
    held = await _each(
        list(wanted.items()),
        lambda item: hold_each(org, item[0], item[1], deps, now, index),
    )
    refused = set()
    for supporter_id, held_for in zip(wanted, held, strict=True):
        for case_id in by_supporter[supporter_id]:
            if case_id not in held_for:
                refused.add(case_id)
                continue
            client = together.clients[case_id]
            assert client is not None
            proposal = domain.explain(
                index,
                client.policy,
                index.position[supporter_id],
                assignment.scores[case_id],
            )
            together.chosen[case_id].append(decisions.offer_of(proposal, together.until(case_id)))
    return refused


async def _settle_chosen(together: _Together, offered: Sequence[CaseMatch]) -> None:
    """Commit what the rounds chose for each client offered."""
    org, deps, now, chosen = together.org, together.deps, together.now, together.chosen
    if together.in_order:
        # Told in the order they asked, one after another: nobody hears of a place before
        # someone who asked earlier (a few clients, a write each).
        for match in offered:
            await _settle(org, match, Offered(chosen[match.case_id]), deps, now)
    else:
        await _each(
            offered, lambda match: _settle(org, match, Offered(chosen[match.case_id]), deps, now)
        )


async def _offer_the_rest(
    together: _Together, cases: Sequence[tuple[Stored[CaseMatch], int]], index_of: LiveIndex
) -> None:
    """The clients the rounds chose nobody for are offered places one by one, in the cases'
    order."""
    org, deps, now = together.org, together.deps, together.now
    opened = index_of.opened
    for stored, _ in cases:
        client = together.clients[stored.record.case_id]
        if client is not None and not together.chosen.get(stored.record.case_id):
            if together.in_order and index_of.opened != opened:
                # A place opened part way down the list: it is for the first in line, so
                # the list is gone through again from the top.
                deps.turns.again.add(org)
                return
            await _settle(
                org, stored.record, await offer(org, stored.record, client, deps, now), deps, now
            )


async def _each(items: Sequence[T], work: Callable[[T], Awaitable[U]]) -> list[U]:
    """``work`` on every item, ``BATCH_IN_FLIGHT`` at a time, in the items' order. Every one
    runs to its end before the first error (if any) is raised, so nothing is left half done
    behind it."""
    slots = asyncio.Semaphore(BATCH_IN_FLIGHT)

    async def one(item: T) -> U:
        async with slots:
            return await work(item)

    results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[U], results)


async def _settle(
    org: str, gathered_for: CaseMatch, offered: Offered, deps: MatchingDeps, now: datetime
) -> None:
    """Commit offers reserved for the state ``gathered_for``, unless the case moved on
    meanwhile (then its holds go back)."""

    async def reserved(seen: CaseMatch | None) -> tuple[Offered | None, list[str]]:
        if seen != gathered_for:
            log.info("batch_case_changed_meanwhile", org=org, case_id=gathered_for.case_id)
            await give_back(org, gathered_for.case_id, offered.held, deps)
            return None, []
        return offered, offered.held

    await on_case(
        org,
        gathered_for.case_id,
        deps,
        reserved,
        lambda m, got: (
            decisions.offers_or_waitlist(m, got, now) if m is not None and got is not None else None
        ),
    )
