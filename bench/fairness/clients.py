"""The population (supporters who fit every client, clients with the same needs) and the
clients' part: commands sent as a client would, proposals accepted."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from alongside import sample
from alongside.client import AlongsideClient
from bench.fairness.shared import (
    COMMAND_DEADLINE_S,
    ORG,
    REQUEST_TIMEOUT_S,
    RETRYABLE,
    SEED,
    SOURCE,
    Event,
)
from bench.faults.traffic import says_retry
from contracts.envelope import Command, wrap
from contracts.intake import Method, Recovery, SubmitIntake
from contracts.matching import AcceptProposal
from contracts.replies import CommandAccepted, CommandRejected
from runtime import bus
from runtime.clock import SYSTEM


def supporter_commands(count: int, cap: int) -> list[list[Command]]:
    """Each supporter's commands, in order: registration (fitting every client) and vetting
    that passes."""
    rng, today = random.Random(SEED), SYSTEM().date()
    people: list[list[Command]] = []
    for n in range(count):
        supporter_id = f"s{n:03d}"
        command = sample.supporter(rng, supporter_id)
        profile = command.profile.model_copy(
            update={
                "caseload_cap": cap,
                "methods": list(Method),
                "affiliations": [],
                "youth_cleared": True,
                "languages": sorted({"en", *command.profile.languages}),
            }
        )
        vetting = []
        for item in sample.vetting(rng, supporter_id, today):
            if isinstance(item.evidence, Recovery):  # long enough for every supporter
                item = item.model_copy(
                    update={"evidence": Recovery(since=today - timedelta(days=1000))}
                )
            vetting.append(item)
        people.append([command.model_copy(update={"profile": profile}), *vetting])
    return people


def intakes(count: int) -> list[SubmitIntake]:
    """Clients every supporter fits: ``en``, adults, no ``must``, no safety concern."""
    rng = random.Random(SEED + 1)
    made = []
    for i in range(count):
        command = sample.intake(rng, f"c{i:04d}")
        client = command.client.model_copy(
            update={
                "languages": ["en"],
                "birth_year": min(command.client.birth_year, 1995),
                "gender_preference": None,
                "cultural_preference": None,
                "safety_concerns": [],
            }
        )
        made.append(command.model_copy(update={"client": client}))
    return made


def answerers(commands: Sequence[SubmitIntake], share: float) -> set[str]:
    """The clients who accept their first proposal: ``share`` of them, chosen by the seed."""
    rng = random.Random(SEED + 2)
    return {c.case_id for c in commands if rng.random() < share}


@dataclass
class Sent:
    reply: CommandAccepted | CommandRejected | None = None
    attempts: int = 0


async def submit(client: AlongsideClient, command: Command) -> Sent:
    """One command until it is answered for good, every attempt the same envelope (same id):
    again after a timeout, no responders, or a reply that asks for a retry."""
    envelope = wrap(command, org=ORG, source=SOURCE, id=uuid.uuid4().hex, time=SYSTEM())
    body, headers = envelope.model_dump_json().encode(), bus.headers_of(envelope)
    sent, delay, give_up = Sent(), 0.1, time.monotonic() + COMMAND_DEADLINE_S
    while True:
        sent.attempts += 1
        try:
            sent.reply = await client.send_raw(
                ORG,
                command.service,
                command.type_name,
                body,
                REQUEST_TIMEOUT_S,
                headers,
                retry_for=0,
            )
            if not says_retry(sent.reply):
                return sent
        except RETRYABLE:
            pass
        if time.monotonic() > give_up:
            return sent
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


class Answers:
    """Each client accepts their first proposal ``delay_s`` after seeing it."""

    def __init__(self, client: AlongsideClient, delay_s: float, answering: set[str]) -> None:
        self.client, self.delay_s, self.answering = client, delay_s, answering
        self.accepted: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.unanswered = 0
        self.sent = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self._asked: set[tuple[str, int]] = set()

    def on_proposed(self, event: Event) -> None:
        case_id, round_ = str(event.data["case_id"]), int(event.data["round"])
        if (
            case_id not in self.answering
            or case_id in self.accepted
            or (case_id, round_) in self._asked
        ):
            return
        self._asked.add((case_id, round_))
        supporter_id = str(event.data["proposals"][0]["supporter_id"])
        task = asyncio.create_task(self._accept(case_id, supporter_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _accept(self, case_id: str, supporter_id: str) -> None:
        await asyncio.sleep(self.delay_s)
        self.sent += 1
        sent = await submit(self.client, AcceptProposal(case_id=case_id, supporter_id=supporter_id))
        if isinstance(sent.reply, CommandAccepted):
            self.accepted.add(case_id)
        elif isinstance(sent.reply, CommandRejected):
            self.refused["; ".join(f"{e.field}: {e.reason}" for e in sent.reply.errors)] += 1
        else:
            self.unanswered += 1
