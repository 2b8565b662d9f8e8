"""The rules service's handlers: evaluation requests, reactions to events, and the sweep.

Each stored decision names the ruleset version and content hash that decided
it and every fired rule with its reason. A decision event is published only
when a decision changes, with an id derived from its content, so replicas
that reach the same decision at once publish it once.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from nats.js import JetStreamContext
from pydantic import ValidationError

from contracts.envelope import Event, new_id
from contracts.intake import (
    CaseStageChanged,
    ClientErased,
    ConsentGiven,
    ConsentWithdrawn,
    IntakeReceived,
    SupporterErased,
    SupporterRegistered,
    SupporterUpdated,
    SupportPersonNamed,
    VettingEvidenceRecorded,
)
from contracts.matching import MatchEnded, ProposalAccepted, ServiceRefused
from contracts.replies import CommandRejected, field_errors
from contracts.rules import (
    FACTS,
    SERVICE,
    ConsentDecided,
    EvaluateRules,
    Kind,
    LoggedDecision,
    MatchingPolicyDecided,
    RulesDecision,
    RulesEvaluated,
    SupporterEligibilityDecided,
)
from runtime import metrics
from runtime.changes import Change, Removal, on_record
from runtime.clock import Clock
from runtime.dispatch import Handlers, Meta, Received
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.state import CaseloadReader, Policies, RecordReader
from runtime.store import Stored
from runtime.unit import EventKey, UnitOfWork
from runtime.vault import unless_erased
from services.rules import domain, facts
from services.rules.adapters import DecisionLog, DecisionStore, RulesStore, decision_key
from services.rules.bundle import Loaded
from services.rules.live import LiveRulesets

log = get_logger(__name__)

SOURCE = f"alongside/{SERVICE}"
_NAMESPACE = uuid.UUID("0b7f1f0e-8a1d-4a43-9a43-6f5d7c1f2e21")


@dataclass(frozen=True)
class RulesDeps:
    js: JetStreamContext
    live: LiveRulesets
    decisions: DecisionStore
    records: RecordReader
    caseloads: CaseloadReader
    policies: Policies
    published: RulesStore
    log: DecisionLog
    settings: Settings
    clock: Clock
    # How a decision is stored, logged and announced (``runtime.unit``).
    decided: UnitOfWork[RulesDecision]


def subject_of(kind: Kind, fact: Mapping[str, Any]) -> str:
    return str(fact["supporter_id"] if kind == Kind.ELIGIBILITY else fact["case_id"])


handlers: Handlers[RulesDeps] = Handlers(SERVICE)


@handlers.on(EvaluateRules)
async def evaluate_rules(
    command: EvaluateRules, received: Received, deps: RulesDeps
) -> RulesEvaluated | CommandRejected:
    try:
        fact = FACTS[command.kind].model_validate(command.facts).model_dump(mode="json")
    except ValidationError as error:
        return CommandRejected(
            command_id=received.envelope.id,
            command_type=EvaluateRules.type_name,
            errors=field_errors(error, "data.facts"),
        )
    decision = deciding(
        deps,
        received.org,
        command.kind,
        lambda loaded: domain.decide(loaded, subject_of(command.kind, fact), fact, deps.clock()),
    )
    # Logged before it is answered: nothing acts on a decision the log does not hold.
    await deps.log.append(
        LoggedDecision(org=received.org, decision=decision, cause_id=received.envelope.id)
    )
    return RulesEvaluated(command_id=received.envelope.id, decision=decision)


# Intake's records changed: decide again what they may have changed.


@handlers.on(SupporterRegistered)
async def on_supporter_registered(event: SupporterRegistered, meta: Meta, deps: RulesDeps) -> None:
    on_record(await decide_eligibility(meta.org, event.supporter_id, deps), "such supporter")


@handlers.on(SupporterUpdated)
async def on_supporter_updated(event: SupporterUpdated, meta: Meta, deps: RulesDeps) -> None:
    on_record(await decide_eligibility(meta.org, event.supporter_id, deps), "such supporter")


@handlers.on(VettingEvidenceRecorded)
async def on_vetting_evidence_recorded(
    event: VettingEvidenceRecorded, meta: Meta, deps: RulesDeps
) -> None:
    on_record(await decide_eligibility(meta.org, event.supporter_id, deps), "such supporter")


@handlers.on(IntakeReceived)
async def on_intake_received(event: IntakeReceived, meta: Meta, deps: RulesDeps) -> None:
    on_record(await decide_matching_policy(meta.org, event.case_id, deps), "such case")
    on_record(await decide_consent(meta.org, event.case_id, deps), "such case")


@handlers.on(SupportPersonNamed)
async def on_support_person_named(event: SupportPersonNamed, meta: Meta, deps: RulesDeps) -> None:
    on_record(await decide_consent(meta.org, event.case_id, deps), "such case")


@handlers.on(ConsentGiven)
async def on_consent_given(event: ConsentGiven, meta: Meta, deps: RulesDeps) -> None:
    on_record(await decide_consent(meta.org, event.case_id, deps), "such case")


@handlers.on(ConsentWithdrawn)
async def on_consent_withdrawn(event: ConsentWithdrawn, meta: Meta, deps: RulesDeps) -> None:
    on_record(await decide_consent(meta.org, event.case_id, deps), "such case")


@handlers.on(CaseStageChanged)
async def on_case_stage_changed(event: CaseStageChanged, meta: Meta, deps: RulesDeps) -> None:
    on_record(await decide_consent(meta.org, event.case_id, deps), "such case")


# Someone was erased: their latest decisions go; the decision log keeps its entries.


@handlers.on(ClientErased)
async def on_client_erased(event: ClientErased, meta: Meta, deps: RulesDeps) -> None:
    kinds = (Kind.MATCHING_POLICY, Kind.CONSENT, Kind.BOUNDARIES)
    await _forget(meta.org, kinds, event.case_id, deps)


@handlers.on(SupporterErased)
async def on_supporter_erased(event: SupporterErased, meta: Meta, deps: RulesDeps) -> None:
    await _forget(meta.org, (Kind.ELIGIBILITY,), event.supporter_id, deps)


async def _forget(org: str, kinds: tuple[Kind, ...], subject_id: str, deps: RulesDeps) -> None:
    # What a decision announced is logged and published first (the unit settles it).
    for kind in kinds:
        await deps.decided.change(org, decision_key(kind, subject_id), lambda _, __: Removal(()))


# A supporter's caseload changed: eligibility looks at the room left.


@handlers.on(ProposalAccepted)
async def on_proposal_accepted(event: ProposalAccepted, meta: Meta, deps: RulesDeps) -> None:
    await _caseloads_changed(meta.org, [event.supporter_id, *event.released_supporter_ids], deps)


@handlers.on(MatchEnded)
async def on_match_ended(event: MatchEnded, meta: Meta, deps: RulesDeps) -> None:
    await _caseloads_changed(meta.org, [event.supporter_id], deps)


@handlers.on(ServiceRefused)
async def on_service_refused(event: ServiceRefused, meta: Meta, deps: RulesDeps) -> None:
    await _caseloads_changed(meta.org, event.released_supporter_ids, deps)


async def _caseloads_changed(org: str, supporter_ids: list[str], deps: RulesDeps) -> None:
    for supporter_id in sorted(set(supporter_ids)):
        on_record(await decide_eligibility(org, supporter_id, deps), "such supporter")


def deciding(
    deps: RulesDeps, org: str, kind: Kind, decide: Callable[[Loaded], RulesDecision]
) -> RulesDecision:
    """``decide`` with the organisation's live version of ``kind``. A published version that
    fails here is withdrawn for this organisation and kind alone, and the version before
    it decides instead; every other organisation's rules are untouched."""
    while True:
        with deps.live.lease(org, kind) as loaded:
            started = time.perf_counter()
            try:
                decision = decide(loaded)
            except Exception as error:
                if not deps.live.withdraw(org, kind, loaded, error):
                    raise
                continue
            metrics.DECISION_SECONDS.labels(kind.value).observe(time.perf_counter() - started)
            metrics.DECISIONS.labels(org, kind.value, decision.outcome).inc()
            return decision.model_copy(update={"decision_id": new_id()})


async def decide_eligibility(
    org: str, supporter_id: str, deps: RulesDeps, today: date | None = None
) -> RulesDecision | None:
    record = await deps.records.supporter(org, supporter_id)
    if record is None:
        return None
    now = deps.clock()
    today = today or await deps.policies.today(org, now)
    active_cases = await deps.caseloads.active_cases(org, supporter_id)

    def facts_on(day: date) -> dict[str, Any]:
        return facts.eligibility(record, day, active_cases).model_dump(mode="json")

    def decide(loaded: Loaded) -> RulesDecision:
        lapses_on = domain.lapse_date(loaded, facts_on, today)
        decision = domain.decide(loaded, supporter_id, facts_on(today), now, lapses_on=lapses_on)
        if decision.outcome != domain.ELIGIBLE and active_cases > 0:
            # Would they be eligible with room for one more? Then only the caseload is full,
            # and their current matches carry on.
            roomy = facts.eligibility(record, today, active_cases=0).model_dump(mode="json")
            full_only = domain.decide(loaded, supporter_id, roomy, now).outcome == domain.ELIGIBLE
            decision = decision.model_copy(update={"caseload_full_only": full_only})
        return decision

    decision = deciding(deps, org, Kind.ELIGIBILITY, decide)
    event = SupporterEligibilityDecided(
        supporter_id=supporter_id,
        eligible=decision.outcome == domain.ELIGIBLE,
        caseload_full_only=decision.caseload_full_only,
        lapses_on=decision.lapses_on,
        ruleset=decision.ruleset,
        decision_id=decision.decision_id,
    )
    await _record(org, decision, event, deps)
    return decision


async def decide_consent(org: str, case_id: str, deps: RulesDeps) -> RulesDecision | None:
    case = await deps.records.case(org, case_id)
    if case is None:
        return None
    fact = facts.consent(case)
    decision = deciding(
        deps,
        org,
        Kind.CONSENT,
        lambda loaded: domain.decide(loaded, case_id, fact.model_dump(mode="json"), deps.clock()),
    )
    event = ConsentDecided(
        case_id=case_id,
        stage=fact.stage,
        status=decision.outcome,
        missing_party_ids=fact.missing_parties,
        ruleset=decision.ruleset,
        decision_id=decision.decision_id,
    )
    await _record(org, decision, event, deps)
    return decision


async def decide_matching_policy(org: str, case_id: str, deps: RulesDeps) -> RulesDecision | None:
    case = await deps.records.case(org, case_id)
    if case is None:
        return None
    now = deps.clock()
    # Ages are counted on the organisation's date, as eligibility's are.
    fact = facts.matching(case, await deps.policies.today(org, now)).model_dump(mode="json")
    decision = deciding(
        deps, org, Kind.MATCHING_POLICY, lambda loaded: domain.decide(loaded, case_id, fact, now)
    )
    event = MatchingPolicyDecided(
        case_id=case_id, ruleset=decision.ruleset, decision_id=decision.decision_id
    )
    await _record(org, decision, event, deps)
    return decision


def _announced(decision: RulesDecision) -> tuple[object, ...]:
    """What a decision event says. Eligibility events leave out the reasons (vetting details
    are sensitive), so a change of reasons alone is stored but not announced."""
    said: tuple[object, ...] = (
        decision.outcome,
        decision.lapses_on,
        decision.ruleset,
        decision.caseload_full_only,
    )
    if decision.kind != Kind.ELIGIBILITY:
        said += (tuple(f.model_dump_json() for f in decision.fired),)
    return said


async def _record(org: str, decision: RulesDecision, event: Event, deps: RulesDeps) -> bool:
    """Keep a decision that says something new, and announce it if its event would say
    something new. Through the unit of work: stored first, with its announcement and its
    decision log entry, in one write; logged and published second; then cleared. A consumer
    woken by the event therefore always reads the decision it announces. If another replica
    stored a decision meanwhile, it announces its own."""

    async def as_read(current: RulesDecision | None) -> RulesDecision | None:
        return current

    def decide(
        current: RulesDecision | None, read: RulesDecision | None
    ) -> Change[RulesDecision] | None:
        if current != read or domain.same_decision(current, decision):
            return None
        said = current is None or _announced(current) != _announced(decision)
        return Change(decision, [event] if said else [], at=decision.decided_at)

    key = decision_key(decision.kind, decision.subject_id)
    committed = (await deps.decided.change(org, key, decide, gather=as_read)).committed
    if committed:
        log.info(
            "decided",
            org=org,
            kind=decision.kind.value,
            outcome=decision.outcome,
            ruleset=decision.ruleset.id,
        )
    return committed


def announcement_id(key: EventKey) -> str:
    """The id names the transition (from which stored revision, to what), so replicas making
    the same change share it and JetStream keeps one, while a later return to an earlier
    state is a new event."""
    decision = key.record
    assert isinstance(decision, RulesDecision)
    digest = hashlib.sha256(repr(_announced(decision)).encode()).hexdigest()
    kind, subject = key.entity_id.split(".", 1)
    return uuid.uuid5(_NAMESPACE, f"{key.org}:{kind}:{subject}:{key.revision}:{digest}").hex


def decision_logger(
    log_: DecisionLog,
) -> Callable[[str, str, Stored[RulesDecision]], Awaitable[None]]:
    """What a stored decision does besides its announcement: its decision log entry
    (idempotent: the decision id is the message id), written before it is announced."""

    async def write(org: str, _: str, stored: Stored[RulesDecision]) -> None:
        outbox = stored.outbox
        await log_.append(
            LoggedDecision(
                org=org, decision=stored.record, cause_id=outbox.cause_id if outbox else None
            )
        )

    return write


async def announce_pending(deps: RulesDeps) -> int:
    """Publish every log entry and announcement a crash left stored but unpublished (the
    sweep calls this), leaving those decided within ``settle_s`` to the handler still
    publishing them. Returns how many."""
    return await deps.decided.flush_pending(settle_s=deps.settings.settle_s)


async def sweep(deps: RulesDeps, today: date | None = None) -> int:
    """Re-decide every eligibility whose lapse day has come (in the organisation's time zone):
    a record check that expired overnight makes its supporter ineligible with no new input.
    Returns how many changed."""
    changed = 0
    for org, supporter_id in await deps.decisions.subjects(Kind.ELIGIBILITY):
        day = today or await deps.policies.today(org, deps.clock())
        decision, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, supporter_id)
        if decision and decision.lapses_on and decision.lapses_on <= day:
            new = await decide_eligibility(org, supporter_id, deps, day)
            changed += new is not None and new.outcome != decision.outcome
    return changed


async def reconcile(deps: RulesDeps) -> int:
    """The safety net: every case opened more than ``settle_s`` ago has a matching policy
    and a consent decision; a missing one is decided now and counted (in a healthy run,
    none). Returns how many were missing."""
    settled_before = deps.clock() - timedelta(seconds=deps.settings.settle_s)
    missing = 0
    for org, case_id in await deps.records.every_case():
        for kind, decide in (
            (Kind.MATCHING_POLICY, decide_matching_policy),
            (Kind.CONSENT, decide_consent),
        ):
            decision, _ = await deps.decisions.get(org, kind, case_id)
            if decision is not None:
                continue
            case = await unless_erased(deps.records.case(org, case_id))
            if case is None or case.opened_at > settled_before:
                continue
            log.error("case_without_decision", org=org, case_id=case_id, kind=kind.value)
            metrics.RECONCILED.labels("rules", "case_without_decision").inc()
            await decide(org, case_id, deps)
            missing += 1
    return missing


async def redecide_org(org: str, kind: Kind, deps: RulesDeps) -> None:
    """After a new ruleset goes live, every subject it judges is decided again."""
    if kind == Kind.ELIGIBILITY:
        for supporter_id in await deps.records.supporter_ids(org):
            await unless_erased(decide_eligibility(org, supporter_id, deps))
    elif kind == Kind.CONSENT:
        for case_id in await deps.records.case_ids(org):
            await unless_erased(decide_consent(org, case_id, deps))
    elif kind == Kind.MATCHING_POLICY:
        for case_id in await deps.records.case_ids(org):
            await unless_erased(decide_matching_policy(org, case_id, deps))
    # Boundaries judge session requests as they come; nothing stored to re-decide.


async def refresh_rulesets(deps: RulesDeps) -> list[tuple[str, Kind]]:
    """Make every published ruleset live here; return the (org, kind) that changed."""
    changed = []
    for document in await deps.published.all():
        try:
            if deps.live.apply(document):
                changed.append((document.org, document.kind))
        except Exception as error:  # a bad publication never replaces a working version
            log.error(
                "ruleset_refused",
                org=document.org,
                kind=document.kind.value,
                version=document.version,
                error=str(error),
            )
    return changed
