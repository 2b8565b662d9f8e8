"""The whole list of messages: hand-made ones first, then generated ones, each judged by the
exported schema and the contract's own code before it is sent."""

from __future__ import annotations

import copy
import json
import random
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterator

from alongside import sample
from bench.fuzz.commands import command_oracle
from bench.fuzz.events import consumer_oracle
from bench.fuzz.generate import absurd, examples, mutate, strategy
from bench.fuzz.handmade import absurd_scheduling, handmade
from bench.fuzz.schemas import VALIDATORS, shell
from bench.fuzz.shared import (
    COMMAND_SHARE,
    CONSUMERS,
    HANDLED_EVENTS,
    HANDLERS,
    HANDMADE_SHARE,
    POOL,
    SEED,
    Contract,
    Doc,
    Plan,
    Probe,
    Real,
    encode,
    envelope_of,
    on_live_records,
    say,
    subject_for,
)
from contracts import subjects
from contracts.envelope import Command
from contracts.scheduling import ConfigureScheduling, SchedulingPolicy
from runtime.settings import Settings


async def judge(probe: Probe, contract: Contract, settings: Settings) -> None:
    """Fill in what the exported schema and the contract's own code say of ``probe``."""
    org = probe.subject.split(".")[1]
    try:
        doc = json.loads(probe.body)
    except (ValueError, RecursionError):
        doc = None
    probe.schema_valid = (
        isinstance(doc, dict)
        and VALIDATORS.valid(contract.envelope, doc)
        and doc.get("org") == org
        and re.match(subjects.ORG_PATTERN, org) is not None
    )
    if isinstance(doc, dict):
        probe.envelope_ok = VALIDATORS.valid(shell(contract), doc) and doc.get("org") == org
        probe.envelope_type = doc.get("type") if isinstance(doc.get("type"), str) else None
    if probe.kind == "command":
        probe.oracle = await command_oracle(probe, settings)
    else:
        verdicts = {s: consumer_oracle(probe, CONSUMERS[s], HANDLERS[s]) for s in CONSUMERS}
        probe.oracle = ",".join(f"{s}={v}" for s, v in sorted(verdicts.items()))
        probe.expected_dead_letters = frozenset(
            s for s, v in verdicts.items() if v == "dead_letter"
        )


class Builder:
    def __init__(
        self, contracts: list[Contract], real: Real, rng: random.Random, pool: int = POOL
    ) -> None:
        self.contracts = contracts
        self.pool_size = pool
        self.real = real
        self.rng = rng
        self.pools: dict[str, list[Doc]] = {}
        self.ids = 0

    def next_id(self) -> str:
        self.ids += 1
        return f"fz{self.ids:06d}"

    def pool(self, contract: Contract) -> list[Doc]:
        if contract.label not in self.pools:
            salt = sum(map(ord, contract.label))
            datas = examples(strategy(contract.data), self.pool_size, salt) or [{}]
            self.pools[contract.label] = [envelope_of(contract, d) for d in datas]
        return self.pools[contract.label]

    def base(self, contract: Contract) -> Doc:
        """A valid envelope for the contract, preferably one the schema accepts."""
        pool = self.pool(contract)
        valid = [d for d in pool if VALIDATORS.valid(contract.envelope, d)] or pool
        return copy.deepcopy(self.rng.choice(valid))

    def probe(
        self,
        contract: Contract,
        recipe: str,
        body: bytes,
        subject: str | None = None,
        fuzz_id: str | None = None,
    ) -> Probe:
        probe = Probe(
            fuzz_id or self.next_id(),
            contract.kind,
            contract.name,
            contract.service,
            subject or subject_for(contract),
            body,
            recipe,
        )
        if probe.kind == "event":
            probe.msg_id = probe.fuzz_id
        return probe

    def from_doc(self, contract: Contract, recipe: str, doc: Doc) -> Probe:
        fuzz_id = self.next_id()
        if doc.get("id") == "pending":
            doc["id"] = fuzz_id
        return self.probe(contract, recipe, encode(doc), fuzz_id=fuzz_id)

    def generated(self, contract: Contract) -> Probe:
        """One schema-generated message: mutated payload or envelope, absurd, or valid."""
        roll = self.rng.random()
        doc = self.base(contract)
        if roll < 0.60:
            doc, op = mutate(contract.envelope, doc, ("data",), self.rng)
            return self.from_doc(contract, f"schema_mutant:{op}", doc)
        if roll < 0.72:
            doc, op = mutate(contract.envelope, doc, (), self.rng)
            return self.from_doc(contract, f"envelope_mutant:{op}", doc)
        if roll < 0.92:
            return self.from_doc(
                contract, "absurd_values", absurd(contract.envelope, doc, self.real, self.rng)
            )
        return self.from_doc(contract, "schema_valid", doc)

    def handmade(self, budget: int) -> list[Probe]:
        by_recipe: dict[str, list[Probe]] = defaultdict(list)
        for contract in self.contracts:
            if contract.variant:
                continue
            others = [
                c
                for c in self.contracts
                if c.kind == contract.kind
                and c.name != contract.name
                and not c.variant
                and (c.service == contract.service or c.name in HANDLED_EVENTS)
            ]
            other = self.base(self.rng.choice(others)) if others else None
            base = self.base(contract)
            for recipe, subject, body in handmade(contract, base, other):
                probe = self.probe(contract, f"handmade:{recipe}", b"", subject)
                probe.body = body.replace(b'"id": "pending"', f'"id": "{probe.fuzz_id}"'.encode())
                by_recipe[recipe].append(probe)
            by_recipe["duplicate_id"].append(self.duplicate(contract))
        by_recipe["duplicate_id_of_accepted"] = list(self.accepted_duplicates())
        named = {c.name: c for c in self.contracts if not c.variant}
        for recipe, name, data in absurd_scheduling(self.real):
            doc = envelope_of(named[name], data)
            by_recipe[recipe].append(self.from_doc(named[name], f"handmade:{recipe}", doc))
        return round_robin(by_recipe, budget, self.rng)

    def accepted_duplicates(self) -> Iterator[Probe]:
        """Commands that will be accepted, each followed by another payload under its id."""
        named = {c.name: c for c in self.contracts if not c.variant}
        rng = random.Random(SEED + 2)
        pairs: list[tuple[Command, Command]] = []
        for i in range(4):
            pairs.append((sample.intake(rng, f"dup-case-{i}"), sample.intake(rng, f"dup-case-{i}")))
            pairs.append((sample.supporter(rng, f"dup-s{i}"), sample.supporter(rng, f"dup-s{i}x")))
        pairs.append(
            (
                ConfigureScheduling(policy=SchedulingPolicy()),
                ConfigureScheduling(policy=SchedulingPolicy(funded_weeks=20)),
            )
        )
        for one, other in pairs:
            contract = named[one.type_name]
            first = self.from_doc(
                contract,
                "handmade:duplicate_id_of_accepted",
                envelope_of(contract, one.model_dump(mode="json")),
            )
            again = envelope_of(contract, other.model_dump(mode="json"), id=first.fuzz_id)
            first.follows = self.probe(
                contract, "handmade:duplicate_id_of_accepted_second", encode(again)
            )
            yield first

    def duplicate(self, contract: Contract) -> Probe:
        """A message, then another with the same id and a different payload."""
        first_doc, second_doc = self.base(contract), self.base(contract)
        mutated, _ = mutate(contract.envelope, second_doc, ("data",), self.rng)
        if mutated["data"] == first_doc["data"]:
            mutated["data"] = {**mutated["data"], "zz_different": 1}
        first = self.from_doc(contract, "handmade:duplicate_id", first_doc)
        mutated["id"] = first.fuzz_id
        second = self.probe(contract, "handmade:duplicate_id_second", encode(mutated))
        if contract.kind == "event" and self.rng.random() < 0.5:
            second.msg_id = first.msg_id  # the stream's dedupe should drop it
            second.recipe = "handmade:duplicate_msg_id_second"
        first.follows = second
        return first


def round_robin(groups: dict[str, list[Probe]], budget: int, rng: random.Random) -> list[Probe]:
    """Up to ``budget`` messages (a duplicate pair counts two), taking from each group in
    turn so that every kind of bad input is sent even in a short run."""
    queues = {k: deque(rng.sample(v, len(v))) for k, v in sorted(groups.items())}
    chosen: list[Probe] = []
    used = 0
    while used < budget and any(queues.values()):
        for queue in queues.values():
            if queue and used < budget:
                probe = queue.popleft()
                chosen.append(probe)
                used += 1 + (probe.follows is not None)
    return chosen


async def build(
    contracts: list[Contract], real: Real, n: int, settings: Settings, pool: int = POOL
) -> Plan:
    rng = random.Random(SEED)
    builder = Builder(contracts, real, rng, pool)
    started = time.perf_counter()
    for contract in contracts:
        builder.pool(contract)
    say(
        f"generated {sum(map(len, builder.pools.values()))} schema-valid payloads for "
        f"{len(contracts)} message types in {time.perf_counter() - started:.1f} s"
    )
    probes = builder.handmade(int(n * HANDMADE_SHARE))
    used = sum(1 + (p.follows is not None) for p in probes)
    commands = [c for c in contracts if c.kind == "command"]
    events = [c for c in contracts if c.kind == "event"]
    remaining = n - used
    command_count = int(remaining * COMMAND_SHARE)
    probes += [builder.generated(commands[i % len(commands)]) for i in range(command_count)]
    probes += [builder.generated(events[i % len(events)]) for i in range(remaining - command_count)]
    named = {c.name: c for c in contracts if not c.variant}
    for probe in probes:
        for one in (probe, probe.follows):
            if one is not None:
                await judge(one, named[one.name], settings)
    rng.shuffle(probes)
    probes.sort(key=lambda p: not on_live_records(p))  # stable: those first, in their order
    say(
        f"built {sum(1 + (p.follows is not None) for p in probes)} messages in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return Plan(probes, named)
