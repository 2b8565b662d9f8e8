"""The rules service over a real nats-server: decisions from events, lapsing, consent, live publishing."""

from __future__ import annotations

import asyncio
import random
import shutil
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from alongside import sample, services
from alongside.client import AlongsideClient
from contracts import subjects
from contracts.envelope import RawEnvelope, wrap
from contracts.intake import (
    GiveConsent,
    NameSupportPerson,
    PeerSupporter,
    RecordCheck,
    RecordVettingEvidence,
    Stage,
    WithdrawConsent,
)
from contracts.records import CaseRecord
from contracts.replies import CommandRejected
from contracts.rules import (
    EvaluateRules,
    Kind,
    LoggedDecision,
    MatchingPolicyDecided,
    RulesEvaluated,
)
from runtime import topology
from runtime.access import AuthDir
from runtime.clock import SYSTEM, ManualClock
from runtime.settings import Settings
from runtime.state import DecisionLogReader, DecisionReader, StoredDecision
from runtime.store import RecordStore
from runtime.vault import Vault
from services.intake.domain import Context, submit_intake
from services.rules import bundle, handlers, publishing
from services.rules.adapters import RulesStore
from services.rules.handlers import RulesDeps
from tests.conftest import Start
from tests.support import AUCKLAND, accepted, org_today, seen, wait_for

TODAY = org_today(SYSTEM)


@pytest.fixture
async def rules(start: Start) -> services.Running:
    return await start("intake", "rules")


def deps_of(running: services.Running) -> RulesDeps:
    deps = running.deps["rules"]
    assert isinstance(deps, RulesDeps)
    return deps


async def register_vetted(
    client: AlongsideClient, org: str, supporter_id: str, expires_on: date
) -> None:
    rng = random.Random(supporter_id)
    await accepted(client, org, sample.supporter(rng, supporter_id))
    for evidence in sample.vetting(rng, supporter_id, TODAY):
        if isinstance(evidence.evidence, RecordCheck):
            check = evidence.evidence.model_copy(
                update={"issued_on": TODAY - timedelta(days=300), "expires_on": expires_on}
            )
            evidence = RecordVettingEvidence(supporter_id=supporter_id, evidence=check)
        await accepted(client, org, evidence)


async def test_eligibility_is_decided_from_vetting_events_and_lapses_with_time(
    rules: services.Running, client: AlongsideClient, nc: Client, org: str, clock: ManualClock
) -> None:
    expires = TODAY + timedelta(days=10)
    await register_vetted(client, org, "s1", expires)

    deps = deps_of(rules)
    for _ in range(400):  # every vetting event is decided on, the last one makes s1 eligible
        decision, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, "s1")
        if decision is not None and decision.outcome == "eligible":
            break
        await asyncio.sleep(0.05)
    assert decision is not None
    assert decision.outcome == "eligible"
    # The sample's supervision falls overdue (42 days) or the check expires, whichever is first.
    assert decision.lapses_on is not None
    assert decision.lapses_on <= expires + timedelta(days=1)
    assert len(decision.ruleset.content_hash) == 64

    # No new input: the day it lapses, the sweep finds it ineligible, with the reason.
    # (The services' clock moves there: a vetting event still being handled decides as of
    # that day too. Other tests' supporters on the shared server may lapse that day too.)
    clock.set(datetime.combine(decision.lapses_on, time(12), tzinfo=AUCKLAND))
    assert await handlers.sweep(deps) >= 1
    lapsed, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, "s1")
    assert lapsed is not None
    assert lapsed.outcome == "ineligible"
    assert {f.rule for f in lapsed.fired} & {"record-check-expired", "supervision-overdue"}
    for _ in range(400):
        events = await wait_for(client, org, "SupporterEligibilityDecided")
        if events[-1].data["eligible"] is False:
            break
        await asyncio.sleep(0.05)
    assert events[-1].data["eligible"] is False
    assert events[-1].data["ruleset"]["version"] == "1.0.1"
    assert "reason" not in str(events[-1].data)  # reasons stay in the decision record


async def test_consent_activates_only_when_every_party_consented_and_suspends_on_withdrawal(
    rules: services.Running, client: AlongsideClient, org: str
) -> None:
    await register_vetted(client, org, "s1", TODAY + timedelta(days=300))
    await accepted(client, org, sample.intake(random.Random(1), "c1"))
    await accepted(
        client,
        org,
        NameSupportPerson(case_id="c1", support_person=PeerSupporter(supporter_id="s1")),
    )
    await accepted(
        client,
        org,
        GiveConsent(case_id="c1", party_id="client", stages=[Stage.ENTRY], given_on=TODAY),
    )

    async def latest(status: str, missing: list[str] | None = None) -> dict[str, Any]:
        """The latest consent decision, once it says this. (How many came before depends
        on how far the case had got when each event was handled: a decision reads the case
        as it is, never older than the event.)"""
        found: list[RawEnvelope] = []
        for _ in range(150):
            found = await seen(client, org, "ConsentDecided")
            last = found[-1].data if found else {}
            if last.get("status") == status and missing in (None, last["missing_party_ids"]):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {status} consent decision: {[e.data for e in found]}")

    await latest("pending", ["respondent"])  # a support person, the client's consent

    await accepted(
        client,
        org,
        GiveConsent(case_id="c1", party_id="respondent", stages=[Stage.ENTRY], given_on=TODAY),
    )
    await latest("active", [])

    await accepted(
        client, org, WithdrawConsent(case_id="c1", party_id="respondent", withdrawn_on=TODAY)
    )
    await latest("suspended")
    decision, _ = await deps_of(rules).decisions.get(org, Kind.CONSENT, "c1")
    assert decision is not None
    assert decision.fired[0].reason == "Suspended: consent was withdrawn by respondent."


async def test_evaluate_request_explains_and_refuses_bad_facts(
    rules: services.Running, client: AlongsideClient, org: str
) -> None:
    facts = {
        "case_id": "c1",
        "sessions_per_week": 2.0,
        "both_agreed_more_often": False,
        "duration_minutes": 30,
        "method": "home_visit",
        "method_agreed": True,
        "safety_concerns": ["no_home_visits"],
        "days_past_service_end": -5,
        "consent_active": True,
        "purposes": ["legal_advice"],
    }
    reply = await client.request(org, EvaluateRules(kind=Kind.BOUNDARIES, facts=facts))
    assert isinstance(reply, RulesEvaluated)
    assert reply.decision.outcome == "refused"
    assert [f.rule for f in reply.decision.fired] == [
        "more-than-weekly-without-agreement",
        "too-short",
        "home-visit-not-safe",
        "outside-peer-role",
    ]
    assert "legal_advice" in reply.decision.fired[-1].reason

    bad = await client.request(
        org, EvaluateRules(kind=Kind.BOUNDARIES, facts={**facts, "duration_minutes": "long"})
    )
    assert isinstance(bad, CommandRejected)
    assert bad.errors[0].field == "data.facts.duration_minutes"


async def test_published_version_reaches_every_replica_and_a_broken_one_is_refused(
    provisioned: str, auth: AuthDir, client: AlongsideClient, nc: Client, org: str, tmp_path: Path
) -> None:
    first = await services.start(provisioned, ["intake", "rules"], credentials=auth.credentials)
    second = await services.start(provisioned, ["rules"], credentials=auth.credentials)
    try:
        await register_vetted(client, org, "s1", TODAY + timedelta(days=300))
        tree = tmp_path / "rules"
        shutil.copytree(bundle.DEFAULT_ROOT, tree)
        shutil.copytree(tree / "orgs" / "harbour-ombudsman", tree / "orgs" / org)
        store = RulesStore(await nc.jetstream().key_value(topology.RULES_BUCKET))

        document = publishing.prepare(tree, org, Kind.ELIGIBILITY, clock=SYSTEM)
        live = await publishing.publish(nc.jetstream(), store, document, clock=SYSTEM)
        assert live.version == "1.0.1-harbour.1"

        async def versions() -> set[str]:
            return {
                deps_of(r).live.current(org, Kind.ELIGIBILITY).ref.version for r in (first, second)
            }

        for _ in range(400):
            if await versions() == {"1.0.1-harbour.1"}:
                break
            await asyncio.sleep(0.05)
        assert await versions() == {"1.0.1-harbour.1"}

        # The supporter is decided again under the new version (supervision every 30 days).
        for _ in range(400):
            decision, _ = await deps_of(first).decisions.get(org, Kind.ELIGIBILITY, "s1")
            if decision and decision.ruleset.version == "1.0.1-harbour.1":
                break
            await asyncio.sleep(0.05)
        assert decision is not None
        assert decision.ruleset.version == "1.0.1-harbour.1"

        # A broken file is refused at publish and the live version stays.
        override = tree / "orgs" / org / "eligibility" / "override.yaml"
        override.write_text(
            override.read_text()
            .replace('version: "1.0.1-harbour.1"', 'version: "1.0.2"')
            .replace("disable: [caseload-full]", "disable: [no-such-rule]")
        )
        with pytest.raises(publishing.PublishRefused, match="no rule 'no-such-rule'"):
            publishing.prepare(tree, org, Kind.ELIGIBILITY, clock=SYSTEM)
        assert (await store.current(org, Kind.ELIGIBILITY)).version == "1.0.1-harbour.1"  # type: ignore[union-attr]

        # A second version, then a rollback to the first.
        override.write_text(
            override.read_text()
            .replace("disable: [no-such-rule]", "disable: [caseload-full]")
            .replace("supervision_interval_days: 30", "supervision_interval_days: 28")
        )
        await publishing.publish(
            nc.jetstream(),
            store,
            publishing.prepare(tree, org, Kind.ELIGIBILITY, clock=SYSTEM),
            clock=SYSTEM,
        )
        back = await publishing.rollback(nc.jetstream(), store, org, Kind.ELIGIBILITY, clock=SYSTEM)
        assert back.version == "1.0.1-harbour.1"
        assert back.rolled_back_to == "1.0.1-harbour.1"
        assert [d.version for d in await store.history(org, Kind.ELIGIBILITY)] == [
            "1.0.1-harbour.1",
            "1.0.2",
            "1.0.1-harbour.1",
        ]
        for _ in range(400):
            if await versions() == {"1.0.1-harbour.1"}:
                break
            await asyncio.sleep(0.05)
        assert await versions() == {"1.0.1-harbour.1"}

        reply = await client.request(
            org,
            EvaluateRules(
                kind=Kind.ELIGIBILITY,
                facts={
                    "supporter_id": "x",
                    "record_check_present": True,
                    "record_check_clear": True,
                    "record_check_days_left": 100,
                    "interview_passed": True,
                    "professional_references": 1,
                    "personal_references": 1,
                    "recovery_days": 800,
                    "training_courses": ["peer_support_foundations"],
                    "days_since_supervision": 35,
                    "caseload_room": 0,
                    "suspended": False,
                },
            ),
        )
        assert isinstance(reply, RulesEvaluated)
        assert reply.decision.ruleset.version == "1.0.1-harbour.1"
        assert [f.rule for f in reply.decision.fired] == ["supervision-overdue"]
    finally:
        await second.stop()
        await first.stop()


async def test_a_decision_is_readable_before_its_event_reaches_anyone(
    rules: services.Running, client: AlongsideClient, nc: Client, org: str
) -> None:
    """Publishing the event first let matching read no policy, acknowledge and drop the
    client (issue 10): a subscriber reading the decision the moment its event arrives must
    find it, every time."""
    reader = DecisionReader(
        await nc.jetstream().key_value(topology.DECISIONS_BUCKET),
        Vault.of(nc.jetstream(), Settings()),
    )
    found: list[bool] = []

    async def on_decided(msg: Any) -> None:
        case_id = RawEnvelope.model_validate_json(msg.data).data["case_id"]
        decision, _ = await reader.get(org, Kind.MATCHING_POLICY, case_id)
        found.append(decision is not None)

    sub = await nc.subscribe(subjects.event(org, "MatchingPolicyDecided"), cb=on_decided)
    try:
        for n in range(20):
            await accepted(client, org, sample.intake(random.Random(n), f"c{n}"))
        for _ in range(200):
            if len(found) == 20:
                break
            await asyncio.sleep(0.05)
    finally:
        await sub.unsubscribe()
    assert found == [True] * 20


async def test_a_log_entry_and_announcement_a_crash_left_unpublished_are_published_once(
    rules: services.Running, client: AlongsideClient, nc: Client, org: str, clock: ManualClock
) -> None:
    deps = deps_of(rules)
    await accepted(client, org, sample.intake(random.Random(1), "c1"))
    [announced] = await wait_for(client, org, "MatchingPolicyDecided")
    stored, revision = await deps.decisions.load(org, Kind.MATCHING_POLICY, "c1")
    assert stored is not None
    assert stored.announce is None  # published, then cleared
    # As if the process died after storing a decision and before announcing it.
    again = stored.decision.model_copy(update={"decided_at": clock(), "decision_id": "d-again"})
    event = MatchingPolicyDecided(case_id="c1", ruleset=again.ruleset, decision_id="d-again")
    kept = wrap(event, org=org, source="alongside/rules", id="crash-left-this", time=SYSTEM())
    entry = LoggedDecision(org=org, decision=again).model_dump_json()
    await deps.decisions.put(
        org, StoredDecision(decision=again, announce=kept.model_dump_json(), log=entry), revision
    )

    await handlers.announce_pending(deps)
    young, _ = await deps.decisions.load(org, Kind.MATCHING_POLICY, "c1")
    assert young is not None
    assert young.announce is not None  # young: left to the handler that may be on it
    clock.advance(timedelta(seconds=deps.settings.settle_s + 1))
    # This org's (and any other test's leftovers: the suite shares one server).
    assert await handlers.announce_pending(deps) >= 1
    assert await handlers.announce_pending(deps) == 0  # cleared: nothing twice

    published = await wait_for(client, org, "MatchingPolicyDecided", 2)
    assert [e.id for e in published] == [announced.id, "crash-left-this"]
    # (Read as an operator: the rules service may append to the log, not read it.)
    assert (
        await DecisionLogReader(nc.jetstream(), Vault.of(nc.jetstream(), Settings())).find(
            org, "d-again"
        )
        is not None
    )
    cleared, _ = await deps.decisions.load(org, Kind.MATCHING_POLICY, "c1")
    assert cleared is not None
    assert cleared.log is None
    assert cleared.announce is None


async def test_the_sweep_decides_for_a_case_whose_intake_event_never_came(
    rules: services.Running, nc: Client, org: str
) -> None:
    deps = deps_of(rules)
    # As if intake committed the case and died before publishing IntakeReceived, long ago.
    opened = SYSTEM() - timedelta(seconds=deps.settings.settle_s + 60)
    change = submit_intake(sample.intake(random.Random(3), "c1"), None, Context(now=opened))
    cases = RecordStore(await nc.jetstream().key_value(topology.CASES_BUCKET), CaseRecord)
    await cases.save(org, "c1", cases.stored(change.record), 0)

    assert await handlers.reconcile(deps) >= 2  # this org's policy and consent (others: none)
    policy, _ = await deps.decisions.get(org, Kind.MATCHING_POLICY, "c1")
    consent, _ = await deps.decisions.get(org, Kind.CONSENT, "c1")
    assert policy is not None
    assert consent is not None
    assert await handlers.reconcile(deps) == 0


async def test_an_unreadable_entry_in_a_rulesets_history_breaks_neither_rollback_nor_others(
    rules: services.Running, nc: Client, org: str, tmp_path: Path
) -> None:
    tree = tmp_path / "rules"
    shutil.copytree(bundle.DEFAULT_ROOT, tree)
    shutil.copytree(tree / "orgs" / "harbour-ombudsman", tree / "orgs" / org)
    kv = await nc.jetstream().key_value(topology.RULES_BUCKET)
    store = RulesStore(kv)
    first = publishing.prepare(tree, org, Kind.ELIGIBILITY, clock=SYSTEM)
    await publishing.publish(nc.jetstream(), store, first, clock=SYSTEM)
    # Someone wrote what no version of Alongside can read, on top of it.
    await kv.put(RulesStore.key(org, Kind.ELIGIBILITY), b'{"not": "a ruleset"}')

    assert [d.version for d in await store.history(org, Kind.ELIGIBILITY)] == [first.version]
    assert (org, Kind.ELIGIBILITY) not in {(d.org, d.kind) for d in await store.all()}
    await handlers.refresh_rulesets(deps_of(rules))  # every other organisation still loads
    back = await publishing.rollback(
        nc.jetstream(), store, org, Kind.ELIGIBILITY, to_version=first.version, clock=SYSTEM
    )
    assert back.version == first.version
    assert (await store.current(org, Kind.ELIGIBILITY)) is not None
