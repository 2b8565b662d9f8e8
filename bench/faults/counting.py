"""Counting what a fault did: lost, stuck and duplicated cases, and what the logs, the
buckets and the dead letters say about the troubled ones."""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from bench.faults.shared import (
    DECISIONS,
    MATCHING_EVENTS,
    ORG,
    OUTCOMES,
    PROPOSED,
    RECEIVED,
    RETRYABLE,
    SAFETY_NETS,
    WAITLISTED,
    say,
)
from bench.faults.traffic import EventLog, Seen, Sent, Settled
from contracts import subjects
from contracts.replies import CommandAccepted, CommandRejected
from runtime import topology
from services.matching.domain import POLICY


def duplicates(events: list[Seen]) -> list[tuple[str, str]]:
    """Each extra announcement of one change, as (what, which case, supporter or event id)."""
    found: list[tuple[str, str]] = []
    ids = Counter(e.id for e in events)
    found += [("event id stored twice", i) for i, n in ids.items() for _ in range(n - 1)]
    unique = list({e.id: e for e in reversed(events)}.values())
    unique.sort(key=lambda e: e.seq)
    intakes = Counter(str(e.data["case_id"]) for e in unique if e.type == RECEIVED)
    found += [("IntakeReceived twice", c) for c, n in intakes.items() for _ in range(n - 1)]
    found += _decision_duplicates(unique)
    found += _matching_duplicates(unique)
    return found


def _decision_duplicates(events: list[Seen]) -> list[tuple[str, str]]:
    found = []
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        subject_key = DECISIONS.get(e.type)
        if subject_key is None:
            continue
        key = (e.type, str(e.data[subject_key]))
        if previous.get(key) == e.data:
            found.append((f"{e.type} repeated", key[1]))
        previous[key] = e.data
    return found


def _matching_duplicates(events: list[Seen]) -> list[tuple[str, str]]:
    found = []
    rounds: dict[str, set[int]] = defaultdict(set)
    last: dict[str, Seen] = {}
    for e in events:
        if e.type not in MATCHING_EVENTS:
            continue
        case_id = str(e.data["case_id"])
        before = last.get(case_id)
        if e.type == PROPOSED:
            same = (
                before is not None
                and before.type == e.type
                and _supporters(before) == _supporters(e)
            )
            if int(e.data["round"]) in rounds[case_id] or same:
                found.append(("MatchProposed again for one round or the same supporters", case_id))
            rounds[case_id].add(int(e.data["round"]))
        elif e.type == WAITLISTED and (
            before is not None
            and before.type == e.type
            and before.data["constraint"] == e.data["constraint"] != POLICY
        ):
            found.append(("ClientWaitlisted again for the same constraint", case_id))
        last[case_id] = e
    return found


def _supporters(e: Seen) -> list[str]:
    return [str(p["supporter_id"]) for p in e.data["proposals"]]


async def diagnose(js: JetStreamContext, log: EventLog, cases: list[str], root: Path) -> None:
    """What the events, the KV state and the service logs say about troubled cases."""
    buckets = {}
    for bucket in (topology.CASES_BUCKET, topology.DECISIONS_BUCKET, topology.MATCHES_BUCKET):
        with contextlib.suppress(Exception):
            buckets[bucket] = await js.key_value(bucket)
    for case_id in cases[:10]:
        said = [
            f"{e.seq}:{e.type}" + (f"(r{e.data['round']})" if "round" in e.data else "")
            for e in log.events
            if e.data.get("case_id") == case_id
        ]
        say(f"    {case_id}: events {said}")
        for bucket, key in (
            (topology.CASES_BUCKET, f"{ORG}.{case_id}"),
            (topology.DECISIONS_BUCKET, f"{ORG}.matching_policy.{case_id}"),
            (topology.MATCHES_BUCKET, f"{ORG}.{case_id}"),
        ):
            say(f"      {bucket}: {await _kv_summary(buckets.get(bucket), key)}")
        for line in log_lines(root, case_id):
            say(f"      {line}")


def safety_nets(root: Path) -> Counter[str]:
    """How much each service's sweeps completed, from their logs (``service: what``)."""
    found: Counter[str] = Counter()
    for path in sorted(root.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and any(name in line for name in SAFETY_NETS):
                said = json.loads(line)
                found[f"{path.stem}: {said['event']}"] += int(said.get("count", 1))
    return found


def log_lines(root: Path, case_id: str, per_log: int = 4) -> list[str]:
    """The first lines of each service's log that name the case."""
    found = []
    for path in sorted(root.glob("*.log")):
        lines = [line for line in path.read_text(errors="replace").splitlines() if case_id in line]
        found += [f"{path.stem}: {line[:300]}" for line in lines[:per_log]]
    return found


async def _kv_summary(kv: Any, key: str) -> str:
    if kv is None:
        return "bucket unreadable"
    try:
        entry = await kv.get(key)
    except Exception as error:
        return f"none ({type(error).__name__})"
    value = json.loads(entry.value)
    record = value.get("record") or value.get("decision") or {}
    state = record.get("status") or record.get("stage") or record.get("outcome")
    return (
        f"rev {entry.revision}, {state}, "
        f"outbox={'yes' if value.get('outbox') else 'no'}, "
        f"announce={'yes' if value.get('announce') else 'no'}"
    )


async def dead_letters(js: JetStreamContext) -> Counter[str]:
    """The organisation's dead letters, by service, subject and reason."""
    found: Counter[str] = Counter()
    try:
        info = await js.stream_info(topology.DEADLETTER_STREAM)
        if not info.state.messages:
            return found
        sub = await js.subscribe(
            subjects.dead_letters(ORG), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=1.0)
                letter = json.loads(msg.data)["data"]
                found[
                    f"{letter['service']} {subjects.last_token(letter['subject'])}: "
                    f"{letter['reason'][:120]}"
                ] += 1
                if not msg.metadata.num_pending:
                    break
        finally:
            await sub.unsubscribe()
    except RETRYABLE as error:
        found[f"(dead letters unreadable: {type(error).__name__})"] += 1
    return found


def count(
    fault: str, results: dict[str, Sent], log: EventLog, settled: Settled
) -> tuple[dict[str, Any], list[str], list[tuple[str, str]]]:
    """The figures of one fault, the troubled cases and the duplicates."""
    accepted = accepted_cases(results)
    lost = accepted - log.cases_with(*OUTCOMES)
    stuck = settled.intake_at_deadline - lost
    dups = duplicates(log.events)
    statuses = Counter(e.type for e in log.events if e.type in OUTCOMES)
    figures: dict[str, Any] = {
        "lost": len(lost),
        "duplicated": len(dups),
        "stuck": len(stuck),
        "settle_s": None if settled.settle_s is None else round(settled.settle_s, 2),
        **_replies(results),
        "lost_without_intake": len(lost - log.cases_with(RECEIVED)),
        **_announced(results, log),
        # Told it was refused or left unanswered, yet the case was opened all the same.
        "unaccepted_but_received": len((set(results) - accepted) & log.cases_with(RECEIVED)),
        "proposed_events": statuses[PROPOSED],
        "waitlisted_events": statuses[WAITLISTED],
        "events": len(log.events),
    }
    troubled = sorted(lost | stuck | {case for _, case in dups if case.startswith("c")})
    return {f"{fault}_{k}": v for k, v in figures.items()}, troubled, dups


def accepted_cases(results: dict[str, Sent]) -> set[str]:
    return {c for c, s in results.items() if isinstance(s.reply, CommandAccepted)}


def _replies(results: dict[str, Sent]) -> dict[str, int]:
    """How the intakes were answered, and how often they were sent again."""
    return {
        "accepted": len(accepted_cases(results)),
        "rejected": sum(isinstance(s.reply, CommandRejected) for s in results.values()),
        "unanswered": sum(s.reply is None for s in results.values()),
        "retried": sum(s.attempts > 1 for s in results.values()),
        "retry_later": sum(s.retry_later for s in results.values()),
    }


def _announced(results: dict[str, Sent], log: EventLog) -> dict[str, int]:
    """Accepted replies naming an event id that never reached EVENTS, or reached it only
    after the reply (an accepted command's events are published before it is answered)."""
    stored = {e.id: e.stored_at for e in log.events}
    replies = [
        (s.reply, s.answered_at) for s in results.values() if isinstance(s.reply, CommandAccepted)
    ]
    return {
        "reply_events_missing": sum(
            any(i not in stored for i in reply.event_ids) for reply, _ in replies
        ),
        "announced_after_reply": sum(
            any(i not in stored or stored[i] > answered for i in reply.event_ids)
            for reply, answered in replies
            if answered is not None
        ),
    }


def tell(
    results: dict[str, Sent],
    letters: Counter[str],
    swept: Counter[str],
    dups: list[tuple[str, str]],
) -> None:
    """What went on besides the counts: refusals, dead letters, sweeps, duplicates."""
    refusals = Counter(
        "; ".join(f"{e.field}: {e.reason}" for e in s.reply.errors)
        for s in results.values()
        if isinstance(s.reply, CommandRejected)
    )
    for reason, n in refusals.most_common(5):
        say(f"    refused {n} x: {reason[:200]}")
    for letter, n in letters.most_common(5):
        say(f"    dead letters {n} x: {letter}")
    for net, n in swept.most_common():
        say(f"    completed by a sweep: {n} x {net}")
    for what, which in dups[:10]:
        say(f"    duplicated: {what}: {which}")
