"""Counting: the free places at each waitlisting, the order inversions, the waits; and what
the services logged."""

from __future__ import annotations

import bisect
import contextlib
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fairness.clients import Sent
from bench.fairness.follow import Observer
from bench.fairness.shared import (
    PROPOSED,
    RECEIVED,
    SERVICES,
    TAKEN_MEANWHILE,
    WAITLISTED,
    CaseloadUpdate,
    Event,
    Options,
)
from contracts.intake import SubmitIntake
from contracts.replies import CommandAccepted, CommandRejected


class FreePlaces:
    """The free places of the fitting supporters, as caseload updates come, with their
    history (for the minimum over a window)."""

    def __init__(self, caps: dict[str, int], fitting: set[str]) -> None:
        self.caps, self.fitting = caps, fitting
        self.free = {s: caps[s] for s in fitting}
        self.now = sum(self.free.values())
        self.times: list[float] = [float("-inf")]
        self.values: list[int] = [self.now]

    def update(self, update: CaseloadUpdate) -> None:
        if update.supporter_id not in self.fitting:
            return
        free = max(self.caps[update.supporter_id] - update.taken, 0)
        self.now += free - self.free[update.supporter_id]
        self.free[update.supporter_id] = free
        self.times.append(update.at)
        self.values.append(self.now)

    def least_since(self, since: float) -> int:
        """The fewest free places from ``since`` to now."""
        first = max(bisect.bisect_right(self.times, since) - 1, 0)
        return min(self.values[first:])


def analyse(
    observer: Observer, results: dict[str, Sent], commands: Sequence[SubmitIntake], options: Options
) -> dict[str, Any]:
    walk = Walk(FreePlaces(observer.caps, observer.fitting), options.window_s)
    for at, item in timeline(observer, {c.case_id for c in commands}):
        walk.take(at, item)
    accepted = {c for c, s in results.items() if isinstance(s.reply, CommandAccepted)}
    return {
        "intakes": len(commands),
        "accepted": len(accepted),
        "lost": len(accepted - walk.outcomes),
        "intakes_refused": sum(isinstance(s.reply, CommandRejected) for s in results.values()),
        "intakes_unanswered": sum(s.reply is None for s in results.values()),
        **walk.figures(options.margin, observer.live_free_at_waitlisting),
    }


def timeline(observer: Observer, ours: set[str]) -> list[tuple[float, Event | CaseloadUpdate]]:
    """The caseload updates and the events of ``ours`` cases, in the order the server stored
    them (by its timestamps; a caseload update first on a tie, then by sequence)."""
    merged: list[tuple[float, int, int, Event | CaseloadUpdate]] = [
        *((u.at, 0, u.seq, u) for u in observer.caseloads),
        *((e.at, 1, e.seq, e) for e in observer.events if e.data.get("case_id") in ours),
    ]
    merged.sort(key=lambda item: item[:3])
    return [(at, item) for at, _, _, item in merged]


@dataclass
class Walk:
    """What ``analyse`` gathers, walking the timeline one item at a time."""

    places: FreePlaces
    window_s: float
    rank: dict[str, int] = field(default_factory=dict)  # case -> order of its IntakeReceived
    # case -> when its current waitlist spell began
    waiting: dict[str, float] = field(default_factory=dict)
    outcomes: set[str] = field(default_factory=set)
    false_at: list[int] = field(default_factory=list)  # free places at each waitlisting
    whole_window: int = 0
    taken_meanwhile: int = 0
    taken_false: int = 0
    false_clients: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    waits: list[float] = field(default_factory=list)
    constraints: Counter[str] = field(default_factory=Counter)
    proposals: int = 0

    def take(self, at: float, item: Event | CaseloadUpdate) -> None:
        if isinstance(item, CaseloadUpdate):
            self.places.update(item)
            return
        case_id = str(item.data["case_id"])
        if item.type == RECEIVED:
            self.rank.setdefault(case_id, len(self.rank))
        elif item.type == WAITLISTED:
            self.waitlisted(at, case_id, str(item.data["constraint"]))
        elif item.type == PROPOSED:
            self.proposed(at, case_id)

    def waitlisted(self, at: float, case_id: str, constraint: str) -> None:
        free = self.places.now
        self.outcomes.add(case_id)
        self.constraints[constraint] += 1
        self.false_at.append(free)
        if free > 0:
            self.false_clients.add(case_id)
        self.whole_window += self.places.least_since(at - self.window_s) > 0
        if constraint == TAKEN_MEANWHILE:
            self.taken_meanwhile += 1
            self.taken_false += free > 0
        self.waiting.setdefault(case_id, at)

    def proposed(self, at: float, case_id: str) -> None:
        self.outcomes.add(case_id)
        self.proposals += 1
        mine = self.rank.get(case_id, len(self.rank))
        self.pairs.update((a, case_id) for a in self.waiting if self.rank.get(a, -1) < mine)
        if case_id in self.waiting:
            self.waits.append(at - self.waiting.pop(case_id))

    def figures(self, margin: int, live: list[int]) -> dict[str, Any]:
        """The walk's figures; ``live``: the free places the followers saw at each
        waitlisting."""
        waits = self.waits
        return {
            "proposals": self.proposals,
            "waitlistings": len(self.false_at),
            "waitlistings_by_constraint": dict(self.constraints.most_common()),
            "false_waitlistings": sum(n > 0 for n in self.false_at),
            f"false_waitlistings_over_{margin}": sum(n > margin for n in self.false_at),
            "false_waitlistings_whole_window": self.whole_window,
            "false_waitlistings_as_seen_live": sum(n > 0 for n in live),
            "false_waitlisted_clients": len(self.false_clients),
            "max_free_at_waitlisting": max(self.false_at, default=0),
            "taken_meanwhile": self.taken_meanwhile,
            "taken_meanwhile_false": self.taken_false,
            "order_inversions": len(self.pairs),
            "passed_over_clients": len({a for a, _ in self.pairs}),
            "overtaking_clients": len({b for _, b in self.pairs}),
            "waitlisted_then_proposed": len(waits),
            "wait_s_p50": round(statistics.median(waits), 2) if waits else None,
            "wait_s_max": round(max(waits), 2) if waits else None,
        }


def log_warnings(root: Path) -> dict[str, int]:
    """Warnings and errors each service logged, by event name (``service: level event``)."""
    found: Counter[str] = Counter()
    for name in SERVICES:
        path = root / f"{name}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                said = json.loads(line)
                level = said.get("level", "")
                if said.get("failure") == "malformed envelope" and name == "intake":
                    continue  # the bench's own probe (b"{}") that waits for intake to answer
                if level in ("warning", "error", "critical"):
                    found[f"{name}: {level} {said.get('event', '?')}"] += 1
    return dict(found.most_common())
