"""A chosen supporter answers the client's choice (through their own page): they agree, or
they cannot take the client on and the client is offered others, never them again."""

from __future__ import annotations

from alongside import services
from alongside.client import AlongsideClient
from contracts.matching import AcceptClient, AcceptProposal, DeclineClient
from contracts.replies import CommandRejected
from tests.support import accepted, eligible, intake, supporter, wait_for


async def test_a_chosen_supporter_agrees_once_or_declines_and_the_client_is_offered_others(
    running: services.Running, client: AlongsideClient, org: str
) -> None:
    for i in range(4):
        await supporter(client, org, f"s{i}", ["sm"], cap=1)
    await eligible(client, org, 4)
    await accepted(client, org, intake("c1", ["sm"]))
    [first] = await wait_for(client, org, "MatchProposed")
    offered = [p["supporter_id"] for p in first.data["proposals"]]
    chosen, other = offered[0], offered[1]
    await accepted(client, org, AcceptProposal(case_id="c1", supporter_id=chosen))

    # Only the chosen supporter may answer, and agreeing is said once.
    refused = await client.submit(org, AcceptClient(case_id="c1", supporter_id=other))
    assert isinstance(refused, CommandRejected)
    assert refused.errors[0].field == "data.supporter_id"
    await accepted(client, org, AcceptClient(case_id="c1", supporter_id=chosen))
    [agreed] = await wait_for(client, org, "SupporterAgreed")
    assert agreed.data == {"case_id": "c1", "supporter_id": chosen}
    again = await client.submit(org, AcceptClient(case_id="c1", supporter_id=chosen))
    assert isinstance(again, CommandRejected)

    # Declining ends the match; the client is offered others, never this supporter again.
    await accepted(client, org, DeclineClient(case_id="c1", supporter_id=chosen))
    [ended] = await wait_for(client, org, "MatchEnded")
    assert ended.data["reason"] == "supporter_declined"
    proposed = await wait_for(client, org, "MatchProposed", 2)
    assert chosen not in {p["supporter_id"] for p in proposed[-1].data["proposals"]}
