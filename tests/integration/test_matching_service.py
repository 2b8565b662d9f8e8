"""Matching over a real nats-server: proposals, the client's choices, holds, the waitlist."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from nats.aio.client import Client

from alongside import services
from alongside.client import AlongsideClient
from alongside.importer import import_intakes
from contracts.envelope import RawEnvelope
from contracts.intake import (
    CLIENT_PARTY_ID,
    GiveConsent,
    Stage,
    SupporterChanges,
    UpdateSupporter,
)
from contracts.matching import (
    AcceptProposal,
    ChangeSupporter,
    DeclineProposals,
    RefuseService,
    ResumeMatch,
)
from contracts.replies import CommandRejected
from contracts.rules import Kind
from runtime.access import AuthDir
from runtime.clock import SYSTEM
from services.matching import sweeps
from services.matching.deps import MatchingDeps
from tests.conftest import Start
from tests.support import (
    accepted,
    eligible,
    holds,
    intake,
    match_of,
    org_today,
    seen,
    supporter,
    wait_for,
)

TODAY = org_today(SYSTEM)


@pytest.fixture
async def running(start: Start) -> services.Running:
    """The services matching needs and works with; scheduling's events would only add noise."""
    return await start("intake", "rules", "matching")


def deps_of(running: services.Running) -> MatchingDeps:
    deps = running.deps["matching"]
    assert isinstance(deps, MatchingDeps)
    return deps


def of_case(events: list[RawEnvelope], case_id: str) -> list[RawEnvelope]:
    return [e for e in events if e.data["case_id"] == case_id]


async def test_an_intake_gets_explained_proposals_that_hold_slots(
    running: services.Running, client: AlongsideClient, nc: Client, org: str
) -> None:
    await supporter(client, org, "s-lived", ["en", "sm"], lived=["tenancy_dispute"])
    await supporter(client, org, "s-plain", ["sm"])
    await supporter(client, org, "s-other", ["sm"])
    await supporter(client, org, "s-conflicted", ["sm"], affiliated_with="harbour housing  LTD")
    await supporter(client, org, "s-english", ["en"])
    await eligible(client, org, 5)

    await accepted(client, org, intake("c1", ["sm"]))
    [proposed] = await wait_for(client, org, "MatchProposed")

    offered = [p["supporter_id"] for p in proposed.data["proposals"]]
    assert offered[0] == "s-lived"  # the shared lived experience scores highest
    assert sorted(offered) == ["s-lived", "s-other", "s-plain"]  # never conflicted or non-sm
    assert "languages" in proposed.data["proposals"][0]["matched_on"]
    assert "tenancy_dispute" not in proposed.model_dump_json()  # values stay out of events
    record = await match_of(nc, org, "c1")
    assert record.status == "proposed"
    assert record.proposals[0].explanation.startswith(
        "speaks sm; offers phone; has been through tenancy dispute"
    )
    assert "you hoped for: lived experience of tenancy dispute" in record.proposals[1].explanation
    for supporter_id in offered:
        assert set(await holds(nc, org, supporter_id)) == {"c1"}


async def test_decline_change_and_refuse_never_offer_a_supporter_again(
    running: services.Running, client: AlongsideClient, nc: Client, org: str
) -> None:
    for i in range(5):
        await supporter(client, org, f"s{i}", ["sm"], cap=1)
    await eligible(client, org, 5)
    await accepted(client, org, intake("c1", ["sm"]))
    [first] = await wait_for(client, org, "MatchProposed")
    first_ids = {p["supporter_id"] for p in first.data["proposals"]}
    assert len(first_ids) == 3

    await accepted(client, org, DeclineProposals(case_id="c1"))
    proposed = await wait_for(client, org, "MatchProposed", 2)
    second_ids = {p["supporter_id"] for p in proposed[-1].data["proposals"]}
    assert not second_ids & first_ids  # only the two never declined
    assert len(second_ids) == 2
    for supporter_id in first_ids:
        assert await holds(nc, org, supporter_id) == {}  # declined holds released

    chosen = sorted(second_ids)[0]
    await accepted(client, org, AcceptProposal(case_id="c1", supporter_id=chosen))
    # Matching names the chosen supporter as the support person, so consent can be given.
    await wait_for(client, org, "SupportPersonNamed")
    for party in (CLIENT_PARTY_ID, "respondent"):
        await accepted(
            client,
            org,
            GiveConsent(case_id="c1", party_id=party, stages=[Stage.ENTRY], given_on=TODAY),
        )
    [active] = await wait_for(client, org, "MatchActivated")
    assert active.data == {"case_id": "c1", "supporter_id": chosen}
    assert await holds(nc, org, chosen) == {"c1": None}  # held for good
    assert (await match_of(nc, org, "c1")).status == "active"
    # Their one slot is taken: eligibility says the caseload is full.
    decided = await wait_for(client, org, "SupporterEligibilityDecided", 6)
    last = [e.data for e in decided if e.data["supporter_id"] == chosen][-1]
    assert last["eligible"] is False
    assert last["caseload_full_only"] is True  # so scheduling keeps their sessions going

    await accepted(client, org, ChangeSupporter(case_id="c1"))
    [ended] = await wait_for(client, org, "MatchEnded")
    assert ended.data["supporter_id"] == chosen
    assert ended.data["reason"] == "change_of_supporter"
    assert await holds(nc, org, chosen) == {}
    # The one supporter never declined nor changed from is offered; nobody else.
    proposed = await wait_for(client, org, "MatchProposed", 3)
    [last] = [p["supporter_id"] for p in proposed[-1].data["proposals"]]
    assert last == (second_ids - {chosen}).pop()

    await accepted(client, org, RefuseService(case_id="c1"))
    await wait_for(client, org, "ServiceRefused")
    assert (await match_of(nc, org, "c1")).status == "refused"
    again = await client.submit(org, RefuseService(case_id="c1"))
    assert isinstance(again, CommandRejected)
    assert again.errors[0].field == "data.case_id"


async def test_commands_that_cannot_apply_are_refused_naming_the_field(
    running: services.Running, client: AlongsideClient, org: str
) -> None:
    await supporter(client, org, "s1", ["sm"])
    await eligible(client, org, 1)
    await accepted(client, org, intake("c1", ["sm"]))
    await wait_for(client, org, "MatchProposed")

    cases = [
        (AcceptProposal(case_id="c1", supporter_id="nobody"), "data.supporter_id", "not proposed"),
        (AcceptProposal(case_id="c-none", supporter_id="s1"), "data.case_id", "nothing has been"),
        (ChangeSupporter(case_id="c1"), "data.case_id", "not accepted or active"),
        (RefuseService(case_id="c-none"), "data.case_id", "no such case"),
    ]
    for command, field, reason in cases:
        reply = await client.submit(org, command)
        assert isinstance(reply, CommandRejected), command
        assert reply.errors[0].field == field
        assert reason in reply.errors[0].reason


async def test_a_waitlisted_client_is_offered_a_supporter_once_one_is_eligible(
    running: services.Running, client: AlongsideClient, nc: Client, org: str
) -> None:
    await supporter(client, org, "s-en", ["en"])
    await eligible(client, org, 1)
    await accepted(client, org, intake("c-rare", ["niu"]))
    [waiting] = await wait_for(client, org, "ClientWaitlisted")
    assert waiting.data["constraint"] == "matching-policy"  # not which requirement
    assert "niu" not in waiting.model_dump_json()  # what the client asked for stays out
    reason = (await match_of(nc, org, "c-rare")).waitlist_reason
    assert reason == (
        "no supporter left after: The supporter must speak one of the client's languages (niu)."
    )

    await supporter(client, org, "s-niu", ["niu", "en"])
    [proposed] = await wait_for(client, org, "MatchProposed")
    assert proposed.data["case_id"] == "c-rare"
    assert [p["supporter_id"] for p in proposed.data["proposals"]] == ["s-niu"]


async def test_expired_holds_are_released_and_the_waitlist_served(
    running: services.Running, client: AlongsideClient, nc: Client, org: str
) -> None:
    await supporter(client, org, "s-only", ["sm"], cap=1)
    await eligible(client, org, 1)
    await accepted(client, org, intake("c-first", ["sm"]))
    await wait_for(client, org, "MatchProposed")
    await accepted(client, org, intake("c-second", ["sm"]))
    [waiting] = await wait_for(client, org, "ClientWaitlisted")
    assert waiting.data["case_id"] == "c-second"  # the one slot is held for c-first
    assert waiting.data["constraint"] == "eligible-with-free-slot"

    deps = deps_of(running)
    assert await sweeps.expire_holds(deps, deps.clock() + timedelta(days=1)) == 0
    # Count only this test's organisation: other tests share the server.
    expired_at = deps.clock() + timedelta(days=3, minutes=1)
    await sweeps.expire_holds(deps, expired_at)
    [expired] = await wait_for(client, org, "ProposalsExpired")
    assert expired.data == {"case_id": "c-first", "supporter_ids": ["s-only"]}
    proposed = await wait_for(client, org, "MatchProposed", 2)
    assert of_case(proposed, "c-second"), "the waitlisted client gets the released slot"
    assert set(await holds(nc, org, "s-only")) == {"c-second"}
    # The first client may still accept, but the supporter is full now.
    reply = await client.submit(org, AcceptProposal(case_id="c-first", supporter_id="s-only"))
    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "data.supporter_id"


async def test_replicas_share_the_work_and_never_overfill_a_supporter(
    provisioned: str, auth: AuthDir, client: AlongsideClient, nc: Client, org: str
) -> None:
    running = await services.start(
        provisioned, ["intake", "rules", "matching"], credentials=auth.credentials
    )
    second = await services.start(provisioned, ["matching"], credentials=auth.credentials)
    try:
        for i in range(4):
            await supporter(client, org, f"s{i}", ["sm"], cap=1)
        await eligible(client, org, 4)
        await asyncio.gather(*(accepted(client, org, intake(f"c{i}", ["sm"])) for i in range(8)))
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            proposed = await seen(client, org, "MatchProposed")
            waitlisted = await seen(client, org, "ClientWaitlisted")
            if len({e.data["case_id"] for e in proposed + waitlisted}) == 8:
                break
        # Each supporter has one slot: four holds in all, however the replicas raced.
        offered = [p["supporter_id"] for e in proposed for p in e.data["proposals"]]
        assert sorted(offered) == ["s0", "s1", "s2", "s3"]
        assert len({e.data["case_id"] for e in proposed + waitlisted}) == 8
        for i in range(4):
            assert len(await holds(nc, org, f"s{i}")) == 1
    finally:
        await second.stop()
        await running.stop()


async def test_an_import_gives_every_client_a_first_proposal_before_anyone_a_second(
    running: services.Running, client: AlongsideClient, nc: Client, org: str
) -> None:
    for i in range(3):
        await supporter(client, org, f"s{i}", ["sm"], cap=2)
    await eligible(client, org, 3)
    lines = [intake(f"c{i}", ["sm"]).model_dump_json() for i in range(5)]
    lines.insert(2, '{"case_id": "c-bad"}')
    text = "\n".join(lines) + "\n"

    result = await import_intakes(client, org, text)

    assert result.submitted == 5
    [(line, errors)] = result.refused
    assert line == 3
    assert {e.field for e in errors} >= {"client", "dispute", "other_parties"}
    assert result.assigned is not None
    assert (result.assigned.clients, result.assigned.proposed) == (5, 5)
    # Six slots, five clients: everyone has one before the one spare slot makes a second.
    counts = sorted([len((await match_of(nc, org, f"c{i}")).proposals) for i in range(5)])
    assert counts == [1, 1, 1, 1, 2]
    assert sum([len(await holds(nc, org, f"s{i}")) for i in range(3)]) == 6
    again = await import_intakes(client, org, text)  # the same file again changes nothing
    assert again.assigned is not None
    assert again.assigned.proposed == 5
    assert sum([len(await holds(nc, org, f"s{i}")) for i in range(3)]) == 6


async def test_no_case_is_dropped_when_decisions_read_here_lag_behind_their_events(
    running: services.Running,
    client: AlongsideClient,
    org: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race that dropped clients: matching woke by MatchingPolicyDecided and found no
    decision (then, because the event came first; now, as a lagging replica would). Every
    first read of a policy here comes back empty; every case must still get its outcome."""
    decisions = deps_of(running).decisions
    read_once: set[str] = set()
    real_get = decisions.get

    async def lagging_get(org_: str, kind: Kind, subject_id: str) -> Any:
        if kind == Kind.MATCHING_POLICY and subject_id not in read_once:
            read_once.add(subject_id)
            return None, 0
        return await real_get(org_, kind, subject_id)

    monkeypatch.setattr(decisions, "get", lagging_get)
    for n in range(3):
        await supporter(client, org, f"s{n}", ["sm"], cap=3)
    await eligible(client, org, 3)

    cases = [f"c{n}" for n in range(12)]
    await asyncio.gather(*(accepted(client, org, intake(case_id, ["sm"])) for case_id in cases))
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        outcomes = [
            e
            async for e in client.events(org, idle_s=0.2)
            if e.type in ("MatchProposed", "ClientWaitlisted")
        ]
        if len(outcomes) >= len(cases) or asyncio.get_running_loop().time() > deadline:
            break

    assert sorted(e.data["case_id"] for e in outcomes) == sorted(cases)  # each once
    assert any(e.type == "MatchProposed" for e in outcomes)
    assert read_once >= set(cases)  # every case went through the lagging read


async def test_a_suspended_supporter_is_withdrawn_refused_and_their_match_paused_until_reviewed(
    running: services.Running, client: AlongsideClient, nc: Client, org: str
) -> None:
    for i in range(4):
        await supporter(client, org, f"s{i}", ["sm"])
    await eligible(client, org, 4)
    await accepted(client, org, intake("c1", ["sm"]))
    await accepted(client, org, intake("c2", ["sm"]))
    await wait_for(client, org, "MatchProposed", 2)
    first = await match_of(nc, org, "c1")
    gone = first.proposals[0].supporter_id
    # c2 chooses the supporter who is about to be suspended.
    c2 = await match_of(nc, org, "c2")
    if gone not in {o.supporter_id for o in c2.proposals}:
        gone = next(
            o.supporter_id
            for o in first.proposals
            if o.supporter_id in {p.supporter_id for p in c2.proposals}
        )
    await accepted(client, org, AcceptProposal(case_id="c2", supporter_id=gone))
    await wait_for(client, org, "ProposalAccepted")

    await accepted(
        client, org, UpdateSupporter(supporter_id=gone, changes=SupporterChanges(suspended=True))
    )

    [withdrawn] = await wait_for(client, org, "ProposalsWithdrawn")
    assert withdrawn.data == {
        "case_id": "c1",
        "supporter_ids": [gone],
        "reason": "supporter_ineligible",
    }
    [paused] = await wait_for(client, org, "MatchPaused")
    assert paused.data == {"case_id": "c2", "supporter_id": gone, "reason": "supporter_ineligible"}
    again = await match_of(nc, org, "c1")
    assert again.status == "proposed"
    assert gone not in {o.supporter_id for o in again.proposals}
    assert len(again.proposals) == 3  # the fourth supporter offered in their place
    assert "c1" not in await holds(nc, org, gone)
    assert await holds(nc, org, gone) == {"c2": None}  # the paused match keeps its slot

    # The review: refused with the rules' reason while the supporter is still suspended.
    refused = await client.submit(org, ResumeMatch(case_id="c2"))
    assert isinstance(refused, CommandRejected)
    assert [(e.field, e.reason) for e in refused.errors] == [
        ("rules.eligibility.suspended", "The supporter is suspended.")
    ]
    await accepted(
        client, org, UpdateSupporter(supporter_id=gone, changes=SupporterChanges(suspended=False))
    )
    await wait_for(client, org, "SupporterEligibilityDecided", 6)
    for _ in range(100):  # eligible again, as decided (its event on its way to matching)
        decision, _ = await deps_of(running).decisions.get(org, Kind.ELIGIBILITY, gone)
        if decision is not None and decision.outcome == "eligible":
            break
        await asyncio.sleep(0.05)
    assert (await match_of(nc, org, "c2")).status == "paused"  # eligibility alone: still paused
    await accepted(client, org, ResumeMatch(case_id="c2"))
    [resumed] = await wait_for(client, org, "MatchResumed")
    assert resumed.data == {"case_id": "c2", "supporter_id": gone}
    assert (await match_of(nc, org, "c2")).status == "accepted"
