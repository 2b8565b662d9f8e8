"""The run's figures (the last line) and its report (every failure class with an example)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fuzz.commands import ANSWERED
from bench.fuzz.events import Advisories
from bench.fuzz.fleet import Fleet
from bench.fuzz.shared import SEED, Findings, Letter, Plan, Probe, every, on_live_records, say


@dataclass
class Ran:
    """What a run sent and saw: what its figures and report are made of."""

    n: int
    started: float  # perf_counter
    plan: Plan
    fleet: Fleet
    arranged: bool
    commands: list[Probe]
    events: list[Probe]
    command_counts: Counter[str]
    event_counts: Counter[str]
    letters: list[Letter]
    serving: dict[str, bool]
    drained: bool
    consumers: dict[str, dict[str, int]]
    advisories: Advisories
    # Each service's RSS (MB) before the fuzz, after the commands, and at the end.
    rss: tuple[dict[str, float], dict[str, float], dict[str, float]]
    commands_s: float


def figures(ran: Ran) -> dict[str, Any]:
    """The run's figures, the last line's JSON (see the package docstring)."""
    return {
        **_messages(ran),
        **_events(ran.event_counts),
        **_commands(ran),
        **_run(ran),
    }


def _messages(ran: Ran) -> dict[str, Any]:
    c = ran.command_counts
    return {
        "n": ran.n,
        "seed": SEED,
        "fuzz_messages": ran.plan.count(),
        "fuzz_schema_invalid_messages": sum(not p.schema_valid for p in every(ran.plan.probes)),
        "fuzz_commands": sum(1 for _ in every(ran.commands)),
        "fuzz_events": sum(1 for _ in every(ran.events)),
        "fuzz_unanswered": c["no_reply"] + c["no_responders"] + c["unsent"],
        "fuzz_crashes": sum(crash.what == "exited" for crash in ran.fleet.crashes),
        "fuzz_hangs": sum(crash.what == "hung" for crash in ran.fleet.crashes),
    }


def _events(e: Counter[str]) -> dict[str, Any]:
    return {
        "fuzz_events_unaccounted": e["unaccounted_lax"] + e["unaccounted_model_rejects"],
        "fuzz_events_unaccounted_model_rejects": e["unaccounted_model_rejects"],
        "fuzz_events_unaccounted_lax": e["unaccounted_lax"],
        "fuzz_events_missing_dead_letters": e["missing_dead_letters"],
        "fuzz_events_exhausted_without_dead_letter": e["exhausted_without_dead_letter"],
        "fuzz_events_dead_lettered": e["dead_lettered"],
        "fuzz_events_ignored": e["ignored"],
        "fuzz_events_logged_unroutable": e["logged_unroutable"],
        "fuzz_events_handled_valid": e["valid_handled"],
        "fuzz_events_deduplicated": e["deduplicated"],
        "fuzz_events_refused_at_publish": e["refused_at_publish"],
        "fuzz_events_publish_failed": e["publish_failed"],
        "fuzz_events_valid_dead_lettered": e["valid_dead_lettered"],
    }


def _commands(ran: Ran) -> dict[str, Any]:
    c = ran.command_counts
    return {
        "fuzz_still_serving": all(ran.serving.values()),
        "still_serving": ran.serving,
        "fuzz_accepted": sum(c[k] for k in ANSWERED),
        "fuzz_rejected": c["rejected"],
        "fuzz_handler_failures": c["handler_failed"],
        "fuzz_bad_replies": c["bad_reply"],
        "fuzz_rejected_without_field_or_reason": c["rejected_without_field_or_reason"],
        "fuzz_accepted_schema_invalid": c["accepted_schema_invalid"],
        "fuzz_duplicate_id_violations": c["duplicate_id_violations"],
        "fuzz_command_dead_letters_missing": c["dead_letters_missing"],
        "fuzz_dead_letters": len(ran.letters),
        "fuzz_dead_letters_without_reason": sum(not letter.reason for letter in ran.letters),
    }


def _run(ran: Ran) -> dict[str, Any]:
    start, mid, end = ran.rss
    return {
        "consumers_drained": ran.drained,
        "consumers": ran.consumers,
        "advisories": dict(ran.advisories.kinds),
        "arranged_real_records": ran.arranged,
        "restarted_services": sorted(ran.fleet.restarted),
        **{f"fuzz_rss_mb_start_{s}": v for s, v in start.items()},
        **{f"fuzz_rss_growth_mb_{s}": round(end[s] - start[s], 1) for s in start},
        **{f"fuzz_rss_growth_events_phase_mb_{s}": round(end[s] - mid[s], 1) for s in start},
        "commands_phase_s": round(ran.commands_s, 1),
        "duration_s": round(time.perf_counter() - ran.started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }


def write_report(
    report: Path,
    figures: dict[str, Any],
    findings: Findings,
    fleet: Fleet,
    errors: dict[str, list[tuple[str, int]]],
    plan: Plan,
) -> None:
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for probe in every(plan.probes):
        outcomes[f"{probe.kind} {probe.recipe}"][probe.outcome] += 1
    live = [
        {"subject": p.subject, "body": p.short(400), "outcome": p.outcome, "errors": p.errors[:2]}
        for p in every(plan.probes)
        if on_live_records(p)
    ]
    pairs = Counter(
        f"{p.outcome} -> {p.follows.outcome}"
        for p in plan.probes
        if p.follows is not None and p.kind == "command"
    )
    logs = report.with_name(report.stem + "-logs")
    logs.mkdir(parents=True, exist_ok=True)
    for paths in fleet.log_files.values():
        for path in paths:
            shutil.copy(path, logs / path.name)
    details: dict[str, Any] = {
        "figures": figures,
        "duplicate_id_pairs": dict(pairs.most_common()),
        "service_logs": str(logs),
        "failure_classes": findings.summary(),
        "crashes": [c.__dict__ for c in fleet.crashes],
        "service_log_errors": errors,
        "outcomes_by_recipe": {k: dict(v.most_common()) for k, v in sorted(outcomes.items())},
        "absurd_dates_and_zones_on_live_records": live,
    }
    report.write_text(json.dumps(details, indent=2, default=str))
    say(f"report written to {report}")
    for failure, rows in grouped(details["failure_classes"]).items():
        recipes = ", ".join(f"{r['recipe']} {r['count']}" for r in rows[:4])
        say(f"  [{sum(r['count'] for r in rows):>5}] {failure} <- {recipes}")
        example = rows[0]["example"]
        say(f"          e.g. {example['subject']}: {example['body'][:160]}")
        for said in example["dead_letters"][:1] + [": ".join(e) for e in example["errors"][:1]]:
            say(f"          -> {said[:160]}")
    for crash in fleet.crashes:
        say(f"  {crash.what}: {crash.service} ({crash.returncode}); last sent: {crash.recent[-3:]}")
    for service, kinds in errors.items():
        for kind, count in kinds[:8]:
            say(f"  {service} log [{count:>5}] {kind}")


def grouped(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Failure classes by failure, the most frequent first."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["failure"]].append(row)
    return dict(sorted(groups.items(), key=lambda item: -sum(r["count"] for r in item[1])))
