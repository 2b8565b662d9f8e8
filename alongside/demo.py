"""``alongside demo``: the flow as far as it is built, on a fresh embedded server.

Two organisations register supporters with their vetting evidence, take client
intakes, name support persons and record each party's consent, while an outside
subscriber that knows only ``contracts/`` follows their events. Then the
service is shown refusing what it must refuse. Exits 0 when everything behaved.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

from nats.aio.client import Client as Nats
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from alongside import sample, services
from alongside.client import AlongsideClient
from alongside.runtime import bus, topology
from alongside.runtime.embedded import EmbeddedNats
from alongside.runtime.state import DecisionStore
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
from contracts.rules import Kind, RulesDecision
from services.rules import bundle, publishing
from services.rules.adapters import RulesStore

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
        running = await services.start(server.url, list(services.SERVICES), settings)
        console.print(f"Services running: {', '.join(services.SERVICES)}\n")
        client = AlongsideClient(nc, source="alongside/demo")
        decisions = DecisionStore(await nc.jetstream().key_value(topology.DECISIONS_BUCKET))
        try:
            await _register_everyone(client, rng, today)
            eligible = await _eligibility(decisions)
            await _support_and_consent(client, decisions, today)
            await _publish_live(nc, decisions, eligible)
            await _refusals(client, nc)
            await _outside_subscriber(client)
        finally:
            await running.stop()
            await nc.close()


# Gaps in some supporters' vetting, so the eligibility rules have something to say.
VETTING_GAPS = {"s000": "record_check", "s001": "interview", "s002": "training"}


async def _register_everyone(client: AlongsideClient, rng: random.Random, today: date) -> None:
    console.print("[bold]1. Supporters, their vetting evidence, and client intakes[/]")
    with Progress(console=console, transient=True) as progress:
        for org in ORGS:
            task = progress.add_task(f"  {org}", total=SUPPORTERS_PER_ORG + CLIENTS_PER_ORG)
            for n in range(SUPPORTERS_PER_ORG):
                supporter_id = f"s{n:03d}"
                await _accepted(client, org, sample.supporter(rng, supporter_id))
                for evidence in sample.vetting(rng, supporter_id, today):
                    if VETTING_GAPS.get(supporter_id) != evidence.evidence.kind:
                        await _accepted(client, org, evidence)
                progress.advance(task)
            for n in range(CLIENTS_PER_ORG):
                await _accepted(client, org, sample.intake(rng, f"case-{n:02d}"))
                progress.advance(task)
    for org in ORGS:
        console.print(
            f"  {org}: {SUPPORTERS_PER_ORG} supporters with their vetting evidence "
            f"(three with a gap), {CLIENTS_PER_ORG} client intakes"
        )


async def _wait_for_decision(
    decisions: DecisionStore, org: str, kind: Kind, subject_id: str,
    until: Callable[[RulesDecision], bool] = lambda _: True,
) -> RulesDecision:  # fmt: skip
    for _ in range(200):
        decision, _ = await decisions.get(org, kind, subject_id)
        if decision is not None and until(decision):
            return decision
        await asyncio.sleep(0.05)
    raise DemoFailed(f"no {kind.value} decision for {org}/{subject_id}")


async def _eligibility(decisions: DecisionStore) -> set[str]:
    org = ORGS[0]
    console.print(f"\n[bold]2. Eligibility, decided by the rules service[/] ({org})")
    table = Table("supporter", "decision", "why", "lapses on", "ruleset version")
    eligible = set()
    for n in range(SUPPORTERS_PER_ORG):
        supporter_id = f"s{n:03d}"
        decision = await _wait_for_decision(decisions, org, Kind.ELIGIBILITY, supporter_id)
        if decision.outcome == "eligible":
            eligible.add(supporter_id)
        if n < 6:
            why = "; ".join(f.reason for f in decision.fired) or "every vetting requirement holds"
            table.add_row(
                supporter_id, decision.outcome, escape(why), str(decision.lapses_on or "-"),
                decision.ruleset.version,
            )  # fmt: skip
    console.print(table)
    console.print(f"  {len(eligible)} of {SUPPORTERS_PER_ORG} supporters eligible")
    expect(len(eligible) < SUPPORTERS_PER_ORG, "the vetting gaps made no one ineligible")
    return eligible


async def _support_and_consent(
    client: AlongsideClient, decisions: DecisionStore, today: date
) -> None:
    org = ORGS[0]
    console.print(f"\n[bold]3. Support persons and all-party consent[/] ({org})")
    peer = NameSupportPerson(case_id="case-00", support_person=PeerSupporter(supporter_id="s003"))
    await _accepted(client, org, peer)
    console.print("  case-00: peer supporter s003 named as support person")
    stages = [Stage.ENTRY, Stage.INVESTIGATION]
    await _accepted(
        client,
        org,
        GiveConsent(case_id="case-00", party_id="client", stages=stages, given_on=today),
    )
    pending = await _wait_for_decision(
        decisions,
        org,
        Kind.CONSENT,
        "case-00",
        lambda d: d.fired[0].reason.endswith("from respondent."),
    )
    console.print(
        f"  case-00: the client consents -> [yellow]{pending.outcome}[/]: {pending.fired[0].reason}"
    )
    await _accepted(
        client,
        org,
        GiveConsent(case_id="case-00", party_id="respondent", stages=stages, given_on=today),
    )
    active = await _wait_for_decision(
        decisions, org, Kind.CONSENT, "case-00", lambda d: d.outcome == "active"
    )
    console.print(
        "  case-00: the respondent consents -> "
        f"[green]{active.outcome}[/]: {active.fired[0].reason}"
    )

    family = FamilyOrFriend(
        kind="family", display_name="Aunt of the client", contact=Contact(phone="+64 21 555 0101")
    )
    await _accepted(client, org, NameSupportPerson(case_id="case-01", support_person=family))
    for party in ("client", "respondent"):
        await _accepted(
            client,
            org,
            GiveConsent(case_id="case-01", party_id=party, stages=[Stage.ENTRY], given_on=today),
        )
    await _accepted(
        client, org, WithdrawConsent(case_id="case-01", party_id="respondent", withdrawn_on=today)
    )
    suspended = await _wait_for_decision(
        decisions, org, Kind.CONSENT, "case-01", lambda d: d.outcome == "suspended"
    )
    console.print(
        "  case-01: a family member named; both parties consent, then the respondent withdraws "
        f"-> [red]{suspended.outcome}[/]: {suspended.fired[0].reason}"
    )
    await _accepted(client, org, ChangeCaseStage(case_id="case-00", stage=Stage.INVESTIGATION))
    console.print("  case-00: moves from entry to investigation (consent covers it)")


async def _publish_live(nc: Nats, decisions: DecisionStore, eligible_before: set[str]) -> None:
    org = ORGS[0]
    console.print(f"\n[bold]4. An ops person publishes {org}'s eligibility override, live[/]")
    console.print(
        "  rules/orgs/harbour-ombudsman/eligibility/override.yaml: "
        "two years of recovery, monthly supervision"
    )
    store = RulesStore(await nc.jetstream().key_value(topology.RULES_BUCKET))
    document = publishing.prepare(bundle.DEFAULT_ROOT, org, Kind.ELIGIBILITY)
    live = await publishing.publish(nc.jetstream(), store, document)
    console.print(
        f"  checked, its cases passed, published: {org}.eligibility@{live.version} "
        f"(revision {live.revision})"
    )
    changed = []
    for n in range(SUPPORTERS_PER_ORG):
        supporter_id = f"s{n:03d}"
        decision = await _wait_for_decision(
            decisions,
            org,
            Kind.ELIGIBILITY,
            supporter_id,
            lambda d: d.ruleset.version == live.version,
        )
        if supporter_id in eligible_before and decision.outcome == "ineligible":
            changed.append((supporter_id, decision))
    console.print(
        f"  every supporter re-decided under {live.version} within moments; "
        f"eligible before, not any more: {len(changed)}"
    )
    expect(bool(changed), "the stricter override changed no one's eligibility")
    for supporter_id, decision in changed[:3]:
        console.print(f"    {supporter_id}: {escape('; '.join(f.reason for f in decision.fired))}")


async def _refusals(client: AlongsideClient, nc: Nats) -> None:
    org = ORGS[0]
    console.print("\n[bold]5. What the service refuses, and how it answers[/]")

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
    console.print("\n[bold]6. An outside subscriber that knows only contracts/[/]")
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
