"""Safeguards where a person is bound, in matching, with no broker: a supporter who may no
longer be matched is never chosen, their open proposals are withdrawn (the client offered
someone else, or waitlisted with why), and their matches are paused for a coordinator's
review rather than ended silently. What is about delivery is in
``tests/integration/test_matching_service.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts.matching import AcceptProposal, ResumeMatch
from contracts.records import CaseMatch
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import Kind, SupporterEligibilityDecided
from runtime import topology
from runtime.state import StoredDecision
from services.matching import decisions, offering, waitlist
from services.matching.deps import MatchingDeps
from services.matching.turns import FIRST, InTurn
from services.rules import facts
from services.rules.adapters import DecisionStore
from tests import records
from tests.fakes import ORG
from tests.support import AUCKLAND
from tests.unit.test_matching_handlers import (
    World,
    add_client,
    add_supporter,
    holds,
    match_of,
    world,
)

__all__ = ["world"]  # the fixture, shared with the handlers' tests


async def set_suspended(world: World, supporter_id: str, suspended: bool) -> None:
    """The supporter's record changes and the rules service decides again, as they would;
    the decision is stored, its event not yet handed to matching."""
    now = world.clock()
    today = now.astimezone(AUCKLAND).date()
    record = records.supporter(supporter_id, today, now).model_copy(update={"suspended": suspended})
    await world.keep(topology.SUPPORTERS_BUCKET, supporter_id, record)
    await world.decide(Kind.ELIGIBILITY, supporter_id, facts.eligibility(record, today))


async def announce(world: World, supporter_id: str) -> None:
    """The rules service's event for the decision last stored, then what follows from it."""
    decision, _ = await world.deps.decisions.get(ORG, Kind.ELIGIBILITY, supporter_id)
    assert decision is not None
    await world.on(
        SupporterEligibilityDecided(
            supporter_id=supporter_id,
            eligible=decision.outcome == "eligible",
            lapses_on=decision.lapses_on,
            ruleset=decision.ruleset,
        )
    )
    await world.settle()


async def test_a_supporter_who_became_ineligible_cannot_be_chosen_and_the_refusal_says_why(
    world: World,
) -> None:
    for n in range(3):
        await add_supporter(world, f"s{n}")
    await add_client(world, "c1")
    chosen = (await match_of(world, "c1")).proposals[0].supporter_id

    # Stricter rules, or a suspension: decided, and the client chooses before matching
    # has heard of it.
    await set_suspended(world, chosen, True)
    reply = await world.send(AcceptProposal(case_id="c1", supporter_id=chosen))

    assert isinstance(reply, CommandRejected)
    assert [(e.field, e.reason) for e in reply.errors] == [
        ("rules.eligibility.suspended", "The supporter is suspended.")
    ]
    assert (await match_of(world, "c1")).status == "proposed"
    assert (await holds(world, chosen))["c1"] is not None  # not held for good


async def test_an_ineligible_supporters_proposals_are_withdrawn_and_the_client_offered_another(
    world: World,
) -> None:
    for n in range(4):
        await add_supporter(world, f"s{n}")
    await add_client(world, "c1")
    first = [o.supporter_id for o in (await match_of(world, "c1")).proposals]
    [spare] = {"s0", "s1", "s2", "s3"} - set(first)
    gone = first[1]

    await set_suspended(world, gone, True)
    await announce(world, gone)

    again = await match_of(world, "c1")
    assert again.status == "proposed"
    assert again.round == 2
    assert {o.supporter_id for o in again.proposals} == (set(first) - {gone}) | {spare}
    assert gone not in again.excluded  # the client did not decline them
    assert "c1" not in await holds(world, gone)
    assert "c1" in await holds(world, spare)
    [withdrawn] = world.events.of("ProposalsWithdrawn")
    assert withdrawn.data == {
        "case_id": "c1",
        "supporter_ids": [gone],
        "reason": "supporter_ineligible",
    }
    proposed = world.events.of("MatchProposed")[-1]
    assert proposed.data["round"] == 2


async def test_with_nobody_else_left_the_client_is_waitlisted_with_the_reason(
    world: World,
) -> None:
    await add_supporter(world, "s0")
    await add_client(world, "c1")

    await set_suspended(world, "s0", True)
    await announce(world, "s0")

    waiting = await match_of(world, "c1")
    assert waiting.status == "waitlisted"
    assert waiting.waitlist_reason == "no supporter left after: eligible with a free slot"
    [waitlisted] = world.events.of("ClientWaitlisted")
    assert waitlisted.data["constraint"] == "eligible-with-free-slot"

    # Eligible again: the waitlisted client is offered them at once.
    await set_suspended(world, "s0", False)
    await announce(world, "s0")
    assert (await match_of(world, "c1")).status == "proposed"


async def test_a_chosen_supporter_who_became_ineligible_pauses_the_match_until_reviewed(
    world: World,
) -> None:
    await add_supporter(world, "s0")
    await add_client(world, "c1")
    assert isinstance(
        await world.send(AcceptProposal(case_id="c1", supporter_id="s0")), CommandAccepted
    )
    await world.settle()

    await set_suspended(world, "s0", True)
    await announce(world, "s0")

    paused = await match_of(world, "c1")
    assert (paused.status, paused.paused_from, paused.supporter_id) == ("paused", "accepted", "s0")
    assert await holds(world, "s0") == {"c1": None}  # not ended: the slot is kept
    [event] = world.events.of("MatchPaused")
    assert event.data == {"case_id": "c1", "supporter_id": "s0", "reason": "supporter_ineligible"}
    assert not world.events.of("MatchEnded")

    # The review cannot resume it while the supporter is still unfit, and says why.
    refused = await world.send(ResumeMatch(case_id="c1"))
    assert isinstance(refused, CommandRejected)
    assert [e.field for e in refused.errors] == ["rules.eligibility.suspended"]

    # Eligible again: that alone does not resume it; the review does.
    await set_suspended(world, "s0", False)
    await announce(world, "s0")
    assert (await match_of(world, "c1")).status == "paused"
    assert isinstance(await world.send(ResumeMatch(case_id="c1")), CommandAccepted)
    resumed = await match_of(world, "c1")
    assert (resumed.status, resumed.paused_from) == ("accepted", None)
    [event] = world.events.of("MatchResumed")
    assert event.data == {"case_id": "c1", "supporter_id": "s0"}


async def test_a_full_caseload_alone_neither_withdraws_nor_pauses(world: World) -> None:
    await add_supporter(world, "s0", caseload_cap=1)
    await add_client(world, "c1")
    assert isinstance(
        await world.send(AcceptProposal(case_id="c1", supporter_id="s0")), CommandAccepted
    )
    await world.settle()
    now = world.clock()
    today = now.astimezone(AUCKLAND).date()
    record = records.supporter("s0", today, now, caseload_cap=1)
    decision = await world.decide(
        Kind.ELIGIBILITY, "s0", facts.eligibility(record, today, active_cases=1)
    )
    assert decision.outcome == "ineligible"
    # As the rules service marks it: ineligible only because the caseload is full.
    store = DecisionStore(world.kv[topology.DECISIONS_BUCKET].as_kv(), world.vault)
    _, revision = await store.get(ORG, Kind.ELIGIBILITY, "s0")
    full = decision.model_copy(update={"caseload_full_only": True})
    await store.put(ORG, StoredDecision(decision=full), revision)

    await announce(world, "s0")

    assert (await match_of(world, "c1")).status == "accepted"
    assert not world.events.of("MatchPaused")


def test_an_unfit_supporter_is_never_activated() -> None:
    now = datetime(2027, 3, 3, tzinfo=UTC)
    accepted = CaseMatch(
        case_id="c1", status="accepted", supporter_id="s0", since=now, updated_at=now
    )
    assert decisions.activate(accepted, consented=True, fit=False, now=now) is None
    change = decisions.activate(accepted, consented=True, fit=True, now=now)
    assert change is not None
    assert change.record.status == "active"


async def test_waitlist_retries_asked_for_together_run_one_at_a_time_and_each_asker_waits(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, rounds, most = 0, 0, 0
    release = asyncio.Event()

    async def once(org: str, deps: MatchingDeps, read_all: bool) -> None:
        nonlocal running, rounds, most
        running, rounds = running + 1, rounds + 1
        most = max(most, running)
        await release.wait()
        running -= 1

    monkeypatch.setattr(waitlist, "_retry_waitlist_once", once)
    # Someone waits, and no round has offered them the places open now.
    now = world.clock()
    waiting = CaseMatch(case_id="c9", status="waitlisted", since=now, updated_at=now)
    world.deps.standings.note(ORG, "c9", waiting)
    asks = [asyncio.create_task(waitlist.retry_waitlist(ORG, world.deps)) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert not any(a.done() for a in asks)  # every asker waits for a round after its ask
    release.set()
    await asyncio.gather(*asks)

    assert most == 1  # never two at once: they would hold the waiting's slots against each other
    assert rounds == 2  # the first, and one more for the four asked for meanwhile
    assert not world.deps.turns.running
    assert not world.deps.turns.again


async def test_a_place_given_back_by_a_change_not_made_goes_to_the_waiting_at_once(
    world: World,
) -> None:
    await add_supporter(world, "s1", caseload_cap=1)
    await add_client(world, "c1")  # holds s1's one slot
    await add_client(world, "c2")  # nobody left: waitlisted
    # s2 joins with its one slot already held for c1, by a change that is never made.
    assert await world.deps.caseloads.hold(ORG, "s2", "c1", None, 1, world.clock())
    await add_supporter(world, "s2", caseload_cap=1)
    assert (await match_of(world, "c2")).status == "waitlisted"

    # The failed change gives its hold back; no event will ever say so.
    await offering.give_back(ORG, "c1", ["s2"], world.deps)
    await asyncio.gather(*world.deps.turns.background)

    offered = await match_of(world, "c2")
    assert offered.status == "proposed"
    assert [o.supporter_id for o in offered.proposals] == ["s2"]


async def test_turns_go_to_who_asked_first_not_to_who_came_to_the_lock_first() -> None:
    turns = InTurn()
    day = datetime(2027, 3, 3, tzinfo=UTC)
    order: list[int] = []
    holding = asyncio.Event()

    async def take(n: int, wait: asyncio.Event | None = None) -> None:
        async with turns.turn(day + timedelta(minutes=n)):
            order.append(n)
            if wait is not None:
                holding.set()
                await wait.wait()

    go = asyncio.Event()
    first = asyncio.create_task(take(5, go))  # holds the lock while the others arrive
    await holding.wait()
    later = [asyncio.create_task(take(n)) for n in (3, 1, 4, 2)]
    gone = asyncio.create_task(take(0))
    await asyncio.sleep(0)
    gone.cancel()  # gave up waiting: passed over, never handed the lock
    await asyncio.sleep(0)
    go.set()
    await asyncio.gather(first, *later)

    assert order == [5, 1, 2, 3, 4]
    assert gone.cancelled()


async def test_a_turn_held_is_the_same_turn_within_it_and_no_one_elses() -> None:
    turns = InTurn()
    day = datetime(2027, 3, 3, tzinfo=UTC)
    order: list[str] = []

    async def other() -> None:
        async with turns.turn(day):
            order.append("other")

    async with turns.turn(day + timedelta(days=1)):
        waiting = asyncio.create_task(other())
        await asyncio.sleep(0)
        # A release made by a change this turn commits: the same turn, not a deadlock.
        async with turns.turn(FIRST):
            order.append("nested")
        await asyncio.sleep(0)
        assert not waiting.done()  # someone else still waits for the turn
    await waiting
    assert order == ["nested", "other"]
