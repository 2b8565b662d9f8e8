"""Real records before the fuzz (so absurd values reach decisions), and valid commands after it
(the services still serve)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nats.aio.client import Client as Nats

from alongside import sample
from alongside.client import AlongsideClient
from bench.fuzz.shared import ORG, SEED, SOURCE, Real, say
from contracts.envelope import Command
from contracts.intake import GiveConsent, Method, Stage
from contracts.matching import AcceptProposal, RefuseService
from contracts.records import CaseMatch, CaseRecord, CaseSchedule
from contracts.replies import CommandAccepted
from contracts.rules import EvaluateRules, Kind, RulesEvaluated
from contracts.scheduling import ConfigureScheduling, CreateGroupSession, SchedulingPolicy
from runtime import topology
from runtime.clock import SYSTEM
from runtime.settings import Settings
from runtime.store import bound_store
from runtime.vault import Vault


async def until(read: Callable[[], Awaitable[Any]], what: str, limit_s: float = 30.0) -> Any:
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        found = await read()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


async def accepted(client: AlongsideClient, command: Command) -> CommandAccepted:
    reply = await client.submit(ORG, command)
    if not isinstance(reply, CommandAccepted):
        raise RuntimeError(f"{command.type_name} refused: {reply.errors}")
    return reply


async def arrange(nc: Nats, settings: Settings) -> tuple[Real, bool]:
    """Eligible supporters, a case whose match is active and whose sessions go ahead, and a
    group session: real records for absurd values to reach. Best effort."""
    from alongside.demo import scheduling_journey

    client = AlongsideClient(nc, source=SOURCE)
    rng = random.Random(SEED)
    today = SYSTEM().astimezone(ZoneInfo(SchedulingPolicy().time_zone)).date()
    supporter_ids = [f"fuzz-s{i}" for i in range(6)]
    story = sample.intake(rng, "fuzz-case")
    client_profile = story.client.model_copy(
        update={
            "languages": ["en"],
            "methods": list(Method),
            "gender_preference": None,
        }
    )
    for supporter_id in supporter_ids:
        registered = sample.supporter(rng, supporter_id)
        profile = registered.profile.model_copy(
            update={
                "languages": ["en"],
                "methods": list(Method),
                "region": client_profile.region,
                "caseload_cap": 5,
                "affiliations": [],
            }
        )
        await accepted(client, registered.model_copy(update={"profile": profile}))
        for evidence in sample.vetting(rng, supporter_id, today):
            await accepted(client, evidence)
    await accepted(client, story.model_copy(update={"client": client_profile}))
    js = nc.jetstream()
    vault = Vault.of(js, settings)
    matches = await bound_store(js, topology.MATCHES_BUCKET, CaseMatch, vault)
    cases = await bound_store(js, topology.CASES_BUCKET, CaseRecord, vault)
    schedules = await bound_store(js, topology.SCHEDULES_BUCKET, CaseSchedule, vault)

    async def proposed() -> CaseMatch | None:
        stored, _ = await matches.load(ORG, "fuzz-case")
        return stored.record if stored and stored.record.proposals else None

    match = await until(proposed, "no proposals for fuzz-case")
    chosen = match.proposals[0].supporter_id
    await accepted(client, AcceptProposal(case_id="fuzz-case", supporter_id=chosen))

    async def named() -> bool:
        stored, _ = await cases.load(ORG, "fuzz-case")
        return stored is not None and stored.record.support_person is not None

    await until(named, "no support person named")
    for party in ("client", *[p.party_id for p in story.other_parties]):
        await accepted(
            client,
            GiveConsent(case_id="fuzz-case", party_id=party, stages=list(Stage), given_on=today),
        )

    async def scheduled() -> bool:
        stored, _ = await schedules.load(ORG, "fuzz-case")
        return stored is not None

    await until(scheduled, "no schedule for fuzz-case")
    journey = await scheduling_journey(client, nc, vault, ORG, "fuzz-case", SYSTEM)
    start = SYSTEM() + timedelta(days=10)
    await accepted(
        client,
        CreateGroupSession(
            group_id="fuzz-group",
            facilitator_id=chosen,
            start=start,
            minutes=60,
            method=Method.VIDEO,
            capacity=5,
        ),
    )
    sessions = tuple(s.session_id for s in journey.schedule.sessions)
    return Real(("fuzz-case",), (chosen, *supporter_ids), sessions, ("fuzz-group",)), True


async def still_serving(nc: Nats, settings: Settings) -> dict[str, bool]:
    """A valid command to each service, answered as it should be; the intake flows on."""
    client = AlongsideClient(nc, source=SOURCE)
    rng = random.Random(SEED + 1)
    results: dict[str, bool] = {}

    async def ask(what: str, call: Callable[[], Awaitable[Any]], ok: type) -> None:
        try:
            reply = await call()
            results[what] = isinstance(reply, ok)
            if not results[what]:
                say(f"still serving? {what}: {reply}")
        except Exception as error:
            say(f"still serving? {what}: {type(error).__name__}: {error}")
            results[what] = False

    policy = ConfigureScheduling(policy=SchedulingPolicy())
    await ask("scheduling", lambda: client.submit(ORG, policy), CommandAccepted)
    await ask(
        "intake", lambda: client.submit(ORG, sample.intake(rng, "after-fuzz")), CommandAccepted
    )
    facts = {
        "case_id": "after-fuzz",
        "stage": "entry",
        "support_person_named": False,
        "parties": [],
        "missing_parties": [],
        "withdrawn_parties": [],
    }
    evaluate = EvaluateRules(kind=Kind.CONSENT, facts=facts)
    await ask("rules", lambda: client.request(ORG, evaluate), RulesEvaluated)
    js = nc.jetstream()
    matches = await bound_store(js, topology.MATCHES_BUCKET, CaseMatch, Vault.of(js, settings))

    async def offered() -> bool:
        stored, _ = await matches.load(ORG, "after-fuzz")
        return stored is not None and stored.outbox is None

    try:
        await until(offered, "after-fuzz was never offered", 60.0)
        results["events_flow_intake_rules_matching"] = True
    except TimeoutError:
        results["events_flow_intake_rules_matching"] = False
    refuse = RefuseService(case_id="after-fuzz")
    await ask("matching", lambda: client.submit(ORG, refuse), CommandAccepted)
    return results
