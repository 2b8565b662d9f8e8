"""``alongside demo``: the flow as far as it is built, on a fresh embedded server.

Two organisations register supporters with their vetting evidence, take client
intakes, name support persons and record each party's consent, while an outside
subscriber that knows only ``contracts/`` follows their events. Then the
service is shown refusing what it must refuse. Exits 0 when everything behaved.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from alongside import sample, services
from alongside.client import AlongsideClient
from alongside.runtime import bus, topology
from alongside.runtime.embedded import EmbeddedNats
from alongside.settings import Settings
from contracts import subjects
from contracts.envelope import Command, RawEnvelope, wrap
from contracts.intake import (
    ChangeCaseStage,
    Contact,
    FamilyOrFriend,
    GiveConsent,
    NameSupportPerson,
    PeerSupporter,
    Stage,
    WithdrawConsent,
)
from contracts.replies import CommandAccepted, CommandRejected

ORGS = ("harbour-ombudsman", "fair-work-scheme")
SUPPORTERS_PER_ORG = 25
CLIENTS_PER_ORG = 5

console = Console(highlight=False)


class DemoFailed(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


async def _accepted(client: AlongsideClient, org: str, command: Command) -> CommandAccepted:
    reply = await client.submit(org, command)
    if not isinstance(reply, CommandAccepted):
        raise DemoFailed(f"{command.type_name} was rejected: {reply.errors}")
    return reply


async def run_demo(seed: int) -> int:
    with tempfile.TemporaryDirectory(prefix="alongside-demo-") as state:
        try:
            await _demo(Path(state), seed)
        except DemoFailed as failure:
            console.print(f"[bold red]demo failed:[/] {failure}")
            return 1
    return 0


async def _demo(state: Path, seed: int) -> None:
    rng = random.Random(seed)
    today = date.today()
    console.rule("[bold]Alongside demo")
    with EmbeddedNats(state) as server:
        console.print(f"Embedded nats-server at {server.url} (JetStream, sync_interval: always)")
        settings = Settings()
        nc = await bus.connect(server.url, "alongside-demo")
        await topology.provision(nc.jetstream(), settings)
        brokers = await services.start(server.url, list(services.SERVICES))
        console.print(f"Services running: {', '.join(services.SERVICES)}\n")
        client = AlongsideClient(nc, source="alongside/demo")
        try:
            await _register_everyone(client, rng, today)
            await _support_and_consent(client, rng, today)
            await _refusals(client, nc)
            await _outside_subscriber(client)
        finally:
            await services.stop(brokers)
            await nc.close()


async def _register_everyone(client: AlongsideClient, rng: random.Random, today: date) -> None:
    console.print("[bold]1. Supporters, their vetting evidence, and client intakes[/]")
    with Progress(console=console, transient=True) as progress:
        for org in ORGS:
            task = progress.add_task(f"  {org}", total=SUPPORTERS_PER_ORG + CLIENTS_PER_ORG)
            for n in range(SUPPORTERS_PER_ORG):
                supporter_id = f"s{n:03d}"
                await _accepted(client, org, sample.supporter(rng, supporter_id))
                for evidence in sample.vetting(rng, supporter_id, today):
                    await _accepted(client, org, evidence)
                progress.advance(task)
            for n in range(CLIENTS_PER_ORG):
                await _accepted(client, org, sample.intake(rng, f"case-{n:02d}"))
                progress.advance(task)
    for org in ORGS:
        console.print(
            f"  {org}: {SUPPORTERS_PER_ORG} supporters (7 pieces of vetting evidence each), "
            f"{CLIENTS_PER_ORG} client intakes"
        )


async def _support_and_consent(client: AlongsideClient, rng: random.Random, today: date) -> None:
    org = ORGS[0]
    console.print("\n[bold]2. Support persons and all-party consent[/] " + f"({org})")
    await _accepted(
        client,
        org,
        NameSupportPerson(case_id="case-00", support_person=PeerSupporter(supporter_id="s003")),
    )
    console.print("  case-00: peer supporter s003 named as support person")
    for party in ("client", "respondent"):
        await _accepted(
            client,
            org,
            GiveConsent(
                case_id="case-00",
                party_id=party,
                stages=[Stage.ENTRY, Stage.INVESTIGATION],
                given_on=today,
            ),
        )
        console.print(f"  case-00: {party} consents for entry and investigation")
    family = FamilyOrFriend(
        kind="family", display_name="Aunt of the client", contact=Contact(phone="+64 21 555 0101")
    )
    await _accepted(client, org, NameSupportPerson(case_id="case-01", support_person=family))
    console.print("  case-01: a family member named as support person")
    await _accepted(
        client,
        org,
        GiveConsent(case_id="case-01", party_id="client", stages=[Stage.ENTRY], given_on=today),
    )
    await _accepted(
        client,
        org,
        GiveConsent(case_id="case-01", party_id="respondent", stages=[Stage.ENTRY], given_on=today),
    )
    await _accepted(
        client, org, WithdrawConsent(case_id="case-01", party_id="respondent", withdrawn_on=today)
    )
    console.print("  case-01: client and respondent consent; then the respondent withdraws")
    await _accepted(client, org, ChangeCaseStage(case_id="case-00", stage=Stage.INVESTIGATION))
    console.print("  case-00: moves from entry to investigation")


async def _refusals(client: AlongsideClient, nc: object) -> None:
    org = ORGS[0]
    console.print("\n[bold]3. What the service refuses, and how it answers[/]")

    bad = GiveConsent(
        case_id="case-02", party_id="landlord", stages=[Stage.ENTRY], given_on=date.today()
    )
    reply = await client.submit(org, bad)
    expect(isinstance(reply, CommandRejected), "a consent from a non-party was accepted")
    _print_rejection("consent from someone who is not a party", reply)

    envelope = json.loads(
        wrap(sample.intake(random.Random(1), "case-bad"), org=org, source="demo").model_dump_json()
    )
    envelope["data"]["client"]["languages"] = ["English"]
    envelope["data"]["other_parties"] = []
    reply = await client.send_raw(org, "intake", "SubmitIntake", json.dumps(envelope).encode())
    expect(isinstance(reply, CommandRejected), "an invalid intake was accepted")
    _print_rejection("an intake with a bad language code and no other party", reply)

    command = sample.intake(random.Random(2), "case-twice")
    first = await client.submit(org, command, command_id="demo-same-id")
    second = await client.submit(org, command, command_id="demo-same-id")
    expect(
        first == second and isinstance(first, CommandAccepted),
        "a repeated command had a second effect",
    )
    console.print("  the same command sent twice: one case opened, the same reply both times")

    other = ORGS[1]
    body = wrap(
        sample.intake(random.Random(3), "case-x"), org=other, source="demo"
    ).model_dump_json()
    reply = await client.send_raw(org, "intake", "SubmitIntake", body.encode())
    expect(isinstance(reply, CommandRejected), "a cross-organisation message was accepted")
    _print_rejection(f"a message for {other} sent on {org}'s subject", reply)

    reply = await client.send_raw(org, "intake", "SubmitIntake", b"{not json")
    expect(isinstance(reply, CommandRejected), "a malformed message was accepted")
    js = client.nc.jetstream()
    letter = await js.get_last_msg(topology.DEADLETTER_STREAM, subjects.dead_letter(org, "intake"))
    reason = RawEnvelope.model_validate_json(letter.data or b"").data["reason"]
    console.print(
        "  a malformed message: answered, and dead-lettered with the reason "
        f"[italic]{escape(reason)}[/]"
    )


def _print_rejection(what: str, reply: CommandAccepted | CommandRejected) -> None:
    assert isinstance(reply, CommandRejected)
    console.print(f"  refused {what}:")
    for error in reply.errors:
        console.print(f"    [yellow]{escape(error.field)}[/]: {escape(error.reason)}")


async def _outside_subscriber(client: AlongsideClient) -> None:
    console.print("\n[bold]4. An outside subscriber that knows only contracts/[/]")
    table = Table("organisation", "event", "count")
    for org in ORGS:
        counts: Counter[str] = Counter()
        async for envelope in client.events(org):
            expect(envelope.org == org, f"{org}'s feed carried an event of {envelope.org}")
            counts[envelope.type] += 1
        for event_type, count in sorted(counts.items()):
            table.add_row(org, event_type, str(count))
    console.print(table)
    console.print(
        "  each organisation's feed holds only its own events; none carries names or contacts"
    )
    console.rule("[bold green]demo complete")
