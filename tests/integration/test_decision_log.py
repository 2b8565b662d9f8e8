"""The decision log: every rules decision with why, kept for the organisation's audit
period, resolvable from the id its public event carries."""

from __future__ import annotations

import random

import pytest
from nats.aio.client import Client

from alongside import sample
from alongside.client import AlongsideClient
from contracts import subjects
from contracts.replies import CommandAccepted
from contracts.rules import EvaluateRules, Kind, RulesEvaluated
from runtime import topology
from runtime.clock import SYSTEM
from runtime.registry import Registry
from runtime.settings import Settings
from runtime.state import DecisionLogReader
from runtime.vault import Vault
from tests.support import org_today, wait_for

pytestmark = pytest.mark.usefixtures("rules_service", "intake")


async def test_each_decision_event_resolves_in_the_log_with_the_rules_that_fired(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    registry = Registry(await nc.jetstream().key_value(topology.REGISTRY_BUCKET), SYSTEM)
    await registry.set_days(org, "audit_days", 30)
    rng = random.Random(3)
    assert isinstance(await client.submit(org, sample.supporter(rng, "s1")), CommandAccepted)
    [unvetted] = await wait_for(client, org, "SupporterEligibilityDecided")
    assert unvetted.data["eligible"] is False
    assert "fired" not in unvetted.data  # the public event names no rule

    log = DecisionLogReader(nc.jetstream(), Vault.of(nc.jetstream(), Settings()))
    logged = await log.find(org, unvetted.data["decision_id"])
    assert logged is not None
    decision = logged.decision
    assert (decision.kind, decision.subject_id, decision.outcome) == (
        Kind.ELIGIBILITY,
        "s1",
        "ineligible",
    )
    assert decision.fired  # operators see which rules, with their reasons
    assert all(f.reason for f in decision.fired)
    assert decision.ruleset.model_dump() == unvetted.data["ruleset"]
    assert decision.facts_sha256 is not None
    assert len(decision.facts_sha256) == 64
    assert logged.cause_id is not None  # the event that led to it

    # Kept for the organisation's audit period, set before the decision.
    entry = await nc.jetstream().get_last_msg(
        topology.DECISION_LOG_STREAM,
        subjects.decision_log(org, "eligibility", "s1", decision.decision_id or ""),
    )
    assert entry.headers is not None
    assert entry.headers["Nats-TTL"] == "720h"

    # Vetted: a second decision about the same person; both stay, oldest first.
    for evidence in sample.vetting(rng, "s1", org_today(SYSTEM)):
        assert isinstance(await client.submit(org, evidence), CommandAccepted)
    await wait_for(client, org, "SupporterEligibilityDecided", 2)
    history = await log.of_subject(org, "s1")
    assert history[0].decision.outcome == "ineligible"
    assert history[-1].decision.outcome == "eligible"
    assert len({h.decision.decision_id for h in history}) == len(history)


async def test_an_evaluation_is_logged_before_it_is_answered(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    facts = {
        "case_id": "c9",
        "sessions_per_week": 1,
        "both_agreed_more_often": False,
        "duration_minutes": 60,
        "method": "phone",
        "method_agreed": True,
        "safety_concerns": [],
        "days_past_service_end": -30,
        "consent_active": True,
        "purposes": ["negotiate_with_the_company"],
    }
    reply = await client.request(
        org, EvaluateRules(kind=Kind.BOUNDARIES, facts=facts), command_id="evaluation-1"
    )
    assert isinstance(reply, RulesEvaluated)
    assert reply.decision.decision_id is not None
    logged = await DecisionLogReader(nc.jetstream(), Vault.of(nc.jetstream(), Settings())).find(
        org, reply.decision.decision_id
    )
    assert logged is not None
    assert logged.cause_id == "evaluation-1"
    assert [f.rule for f in logged.decision.fired] == ["outside-peer-role"]
    # Another organisation's log holds none of it.
    assert (
        await DecisionLogReader(nc.jetstream(), Vault.of(nc.jetstream(), Settings())).find(
            "org-nosuch", reply.decision.decision_id
        )
        is None
    )
