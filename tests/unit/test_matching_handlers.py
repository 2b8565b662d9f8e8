"""Matching's handlers with no broker: fake stores, a fake clock, the real rules in process.

Supporters and intakes are made as intake makes them, eligibility and matching policies
as the rules service decides them (shipped rulesets); matching's own events are handed
back to it as its durable consumer would. What is about delivery and concurrent replicas
is in ``tests/integration/test_matching_service.py`` against a real nats-server.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from contracts.intake import SupporterRegistered
from contracts.matching import AcceptProposal, DeclineProposals
from contracts.records import Caseload, CaseMatch
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import Kind, MatchingPolicyDecided, RulesetRef
from runtime import topology
from runtime.changes import Change, NotYet
from runtime.clock import ManualClock
from runtime.settings import Settings
from runtime.store import Outbox
from services.matching.bootstrap import BUCKETS, wire
from services.matching.deps import MatchingDeps
from services.matching.handlers import handlers
from services.matching.offering import on_case
from services.matching.sweeps import reconcile
from services.rules import facts
from tests import records
from tests.fakes import (
    ORG,
    FakeAsking,
    FakePublisher,
    FakeVault,
    ServiceWorld,
    as_buckets,
    fake_buckets,
)
from tests.support import AUCKLAND

START = datetime(2027, 3, 3, 9, 0, tzinfo=AUCKLAND)
World = ServiceWorld[MatchingDeps]


@pytest.fixture
def world() -> World:
    clock = ManualClock(START)
    kv = fake_buckets(BUCKETS)
    events, asking = FakePublisher(), FakeAsking(clock)
    vault = FakeVault()
    deps = wire(as_buckets(kv), events, asking, Settings(), clock, vault)
    return World(clock, kv, events, asking, handlers, deps, vault=vault)


async def add_supporter(world: World, supporter_id: str, **profile: Any) -> None:
    now = world.clock()
    today = now.astimezone(AUCKLAND).date()
    record = records.supporter(supporter_id, today, now, **profile)
    await world.keep(topology.SUPPORTERS_BUCKET, supporter_id, record)
    decision = await world.decide(Kind.ELIGIBILITY, supporter_id, facts.eligibility(record, today))
    assert decision.outcome == "eligible"
    await world.on(
        SupporterRegistered(
            supporter_id=supporter_id,
            region=record.profile.region,
            caseload_cap=record.profile.caseload_cap,
        )
    )


async def add_client(world: World, case_id: str, **client: Any) -> None:
    now = world.clock()
    case = records.case(case_id, now, **client)
    await world.keep(topology.CASES_BUCKET, case_id, case)
    today = now.astimezone(AUCKLAND).date()
    decision = await world.decide(Kind.MATCHING_POLICY, case_id, facts.matching(case, today))
    await world.on(MatchingPolicyDecided(case_id=case_id, ruleset=decision.ruleset))
    await world.settle()


async def match_of(world: World, case_id: str) -> CaseMatch:
    stored, _ = await world.deps.matches.load(ORG, case_id)
    assert stored is not None
    assert stored.outbox is None  # every change carried out
    return stored.record


async def holds(world: World, supporter_id: str) -> dict[str, datetime | None]:
    caseload: Caseload
    caseload, _ = await world.deps.caseloads.load(ORG, supporter_id)
    return caseload.holds


async def test_a_decided_policy_gets_explained_proposals_each_holding_a_slot(
    world: World,
) -> None:
    for n in range(4):
        await add_supporter(world, f"s{n}")
    await add_supporter(world, "s-es", languages=["es"])

    await add_client(world, "c1")

    match = await match_of(world, "c1")
    assert match.status == "proposed"
    assert len(match.proposals) == 3  # the shipped policy offers three at once
    offered = {o.supporter_id for o in match.proposals}
    assert "s-es" not in offered  # must speak one of the client's languages
    until = START + timedelta(days=3)
    for offer in match.proposals:
        assert "languages" in offer.matched_on
        assert offer.held_until == until
        assert await holds(world, offer.supporter_id) == {"c1": until}
    [proposed] = world.events.of("MatchProposed")
    assert {p["supporter_id"] for p in proposed.data["proposals"]} == offered


async def test_no_supporter_is_proposed_beyond_their_free_slots(world: World) -> None:
    await add_supporter(world, "s1", caseload_cap=1)
    await add_supporter(world, "s2", caseload_cap=1)

    await add_client(world, "c1")
    await add_client(world, "c2")

    assert {o.supporter_id for o in (await match_of(world, "c1")).proposals} == {"s1", "s2"}
    waiting = await match_of(world, "c2")
    assert waiting.status == "waitlisted"
    for supporter_id in ("s1", "s2"):
        assert list(await holds(world, supporter_id)) == ["c1"]


async def test_a_choice_names_the_support_person_and_frees_the_other_slots_for_the_waitlist(
    world: World,
) -> None:
    await add_supporter(world, "s1", caseload_cap=1)
    await add_supporter(world, "s2", caseload_cap=1)
    await add_client(world, "c1")
    await add_client(world, "c2")  # waitlisted: both slots are held for c1

    reply = await world.send(AcceptProposal(case_id="c1", supporter_id="s1"))
    assert isinstance(reply, CommandAccepted)
    await world.settle()

    assert (await match_of(world, "c1")).status == "accepted"
    assert await holds(world, "s1") == {"c1": None}  # held for good
    [named] = world.asking.sent
    assert named.type_name == "NameSupportPerson"
    assert named.model_dump(mode="json")["support_person"]["supporter_id"] == "s1"
    # s2's slot went back, and the waitlisted client was offered it at once.
    retried = await match_of(world, "c2")
    assert retried.status == "proposed"
    assert [o.supporter_id for o in retried.proposals] == ["s2"]


async def test_declined_supporters_are_never_proposed_to_that_client_again(world: World) -> None:
    for n in range(4):
        await add_supporter(world, f"s{n}")
    await add_client(world, "c1")
    first = {o.supporter_id for o in (await match_of(world, "c1")).proposals}

    assert isinstance(await world.send(DeclineProposals(case_id="c1")), CommandAccepted)
    await world.settle()

    again = await match_of(world, "c1")
    assert again.round == 2
    assert not first & {o.supporter_id for o in again.proposals}
    assert set(again.excluded) == first
    # Nothing to choose from any more: a choice of a declined supporter is refused.
    refused = await world.send(AcceptProposal(case_id="c1", supporter_id=sorted(first)[0]))
    assert isinstance(refused, CommandRejected)
    assert refused.errors[0].field == "data.supporter_id"


async def test_what_was_reserved_for_a_state_that_moved_on_goes_back_and_is_gathered_again(
    world: World,
) -> None:
    await add_supporter(world, "s1")
    await add_client(world, "c1")
    before = await match_of(world, "c1")
    gathered: list[CaseMatch | None] = []

    async def gather(seen: CaseMatch | None) -> tuple[bool, list[str]]:
        gathered.append(seen)
        if len(gathered) > 1:
            return False, []
        # A hold taken for this state; then another replica changes the case first.
        assert await world.deps.caseloads.hold(ORG, "s9", "c1", None, 1, world.clock())
        await world.deps.unit.change(ORG, "c1", _declined_elsewhere)
        return True, ["s9"]

    def decide(match: CaseMatch | None, go: bool) -> Change[CaseMatch] | None:
        assert match is not None
        return Change(match.model_copy(update={"round": 99}), []) if go else None

    await on_case(ORG, "c1", world.deps, gather, decide)

    assert len(gathered) == 2
    assert gathered[0] == before
    assert gathered[1] is not None
    assert gathered[1].round == 7
    assert await holds(world, "s9") == {}  # the reservation went back
    assert (await match_of(world, "c1")).round == 7  # the other change stands, alone


def _declined_elsewhere(match: CaseMatch | None, _: None) -> Change[CaseMatch] | None:
    assert match is not None
    return Change(match.model_copy(update={"round": 7}), [])


async def test_a_choice_made_while_an_expiry_is_still_being_carried_out_keeps_its_slot(
    world: World,
) -> None:
    await add_supporter(world, "s1", caseload_cap=1)
    await add_client(world, "c1")
    # The expiry was committed, but its outbox (which releases s1) not yet carried out:
    # a crash, or another replica mid-flush.
    stored, revision = await world.deps.matches.load(ORG, "c1")
    assert stored is not None
    expired = stored.record.model_copy(update={"status": "expired", "released": ["s1"]})
    await world.deps.matches.save(
        ORG, "c1", world.deps.matches.stored(expired, Outbox(events=[])), revision
    )

    reply = await world.send(AcceptProposal(case_id="c1", supporter_id="s1"))

    assert isinstance(reply, CommandAccepted)
    assert (await match_of(world, "c1")).supporter_id == "s1"
    assert await holds(world, "s1") == {"c1": None}  # the expiry's release did not undo it


async def test_an_announced_policy_not_yet_readable_is_looked_at_again_not_acknowledged(
    world: World,
) -> None:
    await add_supporter(world, "s1")
    case = records.case("c1", world.clock())
    await world.keep(topology.CASES_BUCKET, "c1", case)
    ruleset = RulesetRef(org=ORG, kind=Kind.MATCHING_POLICY, version="1.0.0", content_hash="0" * 64)

    # The event arrives before the decision it announces can be read here.
    with pytest.raises(NotYet):
        await world.on(MatchingPolicyDecided(case_id="c1", ruleset=ruleset))

    stored, _ = await world.deps.matches.load(ORG, "c1")
    assert stored is None  # nothing decided on what could not be read
    assert await holds(world, "s1") == {}


async def test_the_sweep_completes_a_case_whose_policy_was_decided_but_never_acted_on(
    world: World,
) -> None:
    await add_supporter(world, "s1")
    now = world.clock()
    case = records.case("c1", now)
    await world.keep(topology.CASES_BUCKET, "c1", case)
    today = now.astimezone(AUCKLAND).date()
    await world.decide(Kind.MATCHING_POLICY, "c1", facts.matching(case, today))
    # Its MatchingPolicyDecided never reached matching (the race issue 10 found).
    assert await reconcile(world.deps) == 0  # not settled yet: events may be on their way

    world.clock.advance(timedelta(seconds=Settings().settle_s + 1))

    assert await reconcile(world.deps) == 1
    assert (await match_of(world, "c1")).status == "proposed"
    assert await reconcile(world.deps) == 0  # completed once, found no more


async def test_holds_for_several_cases_take_one_write_and_stop_at_the_cap(world: World) -> None:
    now = world.clock()
    later, expired = now + timedelta(days=3), now - timedelta(minutes=1)
    caseloads = world.deps.caseloads
    assert await caseloads.hold(ORG, "s1", "old", expired, 3, now - timedelta(days=1))
    assert await caseloads.hold(ORG, "s1", "kept", later, 3, now)
    _, revision = await caseloads.load(ORG, "s1")

    wanted = {"kept": None, "a": later, "b": later, "c": later}
    held, caseload, stands, written = await caseloads.hold_each(ORG, "s1", wanted, 3, now)

    # "kept" already held a slot (its term changes); an expired hold takes none; of the
    # rest, in order, as many as the 3 slots allow.
    assert held == {"kept", "a", "b"}
    assert caseload is not None
    assert caseload.holds == {"kept": None, "a": later, "b": later}
    assert (await caseloads.load(ORG, "s1"))[1] == revision + 1 == written  # one write
    assert stands == caseload
    assert await caseloads.hold_each(ORG, "s1", {"c": later}, 3, now) == (
        set(),
        None,
        caseload,
        written,
    )  # full: nothing written, and the caseload as it stands is what the index learns
