"""What every part of the fault benchmark shares: its constants and options."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import nats
from pydantic import ValidationError

from alongside.services import SERVICES
from contracts import matching as matching_contracts
from contracts.intake import IntakeReceived
from contracts.matching import ClientWaitlisted, MatchProposed
from contracts.rules import ConsentDecided, MatchingPolicyDecided, SupporterEligibilityDecided
from runtime import topology
from runtime.clock import SYSTEM

SEED = 20261123
ORG = "bench"
SOURCE = "bench/faults"
KILLED_SERVICES = tuple(SERVICES)  # intake, rules, matching, scheduling
FAULTS = (*(f"kill_{name}" for name in KILLED_SERVICES), "nats_restart", "cluster_leader")
PROPOSED, WAITLISTED = MatchProposed.type_name, ClientWaitlisted.type_name
RECEIVED = IntakeReceived.type_name
OUTCOMES = (PROPOSED, WAITLISTED)
MATCHING_EVENTS = frozenset(e.type_name for e in matching_contracts.EVENTS)
DECISIONS = {
    MatchingPolicyDecided.type_name: "case_id",
    ConsentDecided.type_name: "case_id",
    SupporterEligibilityDecided.type_name: "supporter_id",
}
CONSUMERS = (topology.RULES_CONSUMER, topology.MATCHING_CONSUMER, topology.SCHEDULING_CONSUMER)
# What every process of the bench runs with, besides the URL and the replicas (--settle-s,
# --sweep-interval-s and --log-level change the first two and add the log level).
SETTINGS = {
    "ALONGSIDE_SETTLE_S": "5",
    "ALONGSIDE_SWEEP_INTERVAL_S": "5",
    "ALONGSIDE_ACK_WAIT_S": "10",
    "ALONGSIDE_NOT_YET_DELAY_S": "0.5",
    "ALONGSIDE_RULES_REFRESH_S": "10",
}
# What the services' sweeps log (at error level, with a count) when they completed work that
# events alone should have done: outboxes, announcements, decisions, matching outcomes.
SAFETY_NETS = (
    "intake_outboxes_finished",
    "decision_announcements_recovered",
    "case_decisions_recovered",
    "matching_outcomes_recovered",
)
REQUEST_TIMEOUT_S = 5.0
RETRYABLE = (nats.errors.Error, TimeoutError, OSError, ValidationError)


def say(text: str) -> None:
    print(f"[faults {SYSTEM():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Options:
    intakes: int
    supporters: int
    concurrency: int
    kill_at: float
    down_s: float
    cluster_down_s: float
    settle_timeout_s: float
    grace_s: float
    command_deadline_s: float
    keep: Path | None
    settings: dict[str, str]  # ALONGSIDE_* for every process

    def setting(self, name: str) -> float:
        return float(self.settings[f"ALONGSIDE_{name.upper()}"])
