"""What every part of the fairness benchmark shares: its constants, scenarios, options, and
the events and caseload updates it follows."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from pydantic import ValidationError

from alongside import services
from alongside.client import Unavailable
from contracts.intake import IntakeReceived
from contracts.matching import ClientWaitlisted, MatchProposed
from contracts.rules import SupporterEligibilityDecided
from runtime import topology
from runtime.clock import SYSTEM

SEED = 20261130
ORG = "bench-fairness"
SOURCE = "bench/fairness"
# Every service a deployment runs (the bench waits for every consumer to settle).
SERVICES = tuple(services.SERVICES)
PROPOSED, WAITLISTED = MatchProposed.type_name, ClientWaitlisted.type_name
RECEIVED, ELIGIBILITY = IntakeReceived.type_name, SupporterEligibilityDecided.type_name
TAKEN_MEANWHILE = "taken-meanwhile"
CASELOADS_STREAM = f"KV_{topology.CASELOADS_BUCKET}"
CASELOADS_PREFIX = f"$KV.{topology.CASELOADS_BUCKET}."
SETUP_IN_FLIGHT = 32
COMMAND_DEADLINE_S = 120.0
REQUEST_TIMEOUT_S = 5.0
RETRYABLE = (nats.errors.Error, TimeoutError, OSError, ValidationError, Unavailable)


def wall() -> float:
    """The wall clock (Unix seconds): what the server's timestamps are compared with."""
    return SYSTEM().timestamp()


def say(text: str) -> None:
    print(f"[fairness {SYSTEM():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Scenario:
    name: str
    supporters: int
    cap: int
    intakes: int
    restart: bool


SCENARIOS = {
    "scarce": Scenario("scarce", 100, 5, 300, restart=False),
    "scarce_restart": Scenario("scarce_restart", 100, 5, 300, restart=True),
    "ample_restart": Scenario("ample_restart", 100, 30, 300, restart=True),
}
QUICK = {"supporters": 30, "intakes": 90}


@dataclass(frozen=True)
class Options:
    in_flight: int = 20
    answer_delay_s: float = 0.5
    answer_share: float = 0.5
    restart_at: float = 1 / 3
    restart_on: str = "accepted"  # or "outcomes": the share counts clients with an outcome
    down_s: float = 1.5
    restart_signal: str = "kill"
    quiet_s: float = 10.0
    final_wait_s: float = 20.0
    quiet_timeout_s: float = 300.0
    window_s: float = 1.0
    margin: int = 20
    log_level: str = "INFO"
    sweep_interval_s: str | None = None  # None: the shipped setting (hourly)
    keep: Path | None = None


@dataclass(frozen=True)
class Event:
    seq: int
    at: float  # the server's timestamp (Unix seconds)
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class CaseloadUpdate:
    seq: int
    at: float
    supporter_id: str
    taken: int  # slots held then (0: deleted)
