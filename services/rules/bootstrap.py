"""Wiring: the rules service's dependencies, with every published ruleset live before it serves."""

from __future__ import annotations

from nats.aio.client import Client

from contracts.records import SchedulingSettings
from runtime import topology
from runtime.clock import Clock
from runtime.registry import Registry
from runtime.settings import Settings
from runtime.state import CaseloadReader, Policies, RecordReader
from runtime.store import RecordStore
from runtime.unit import EventPublisher, UnitOfWork
from runtime.vault import Vault
from services.rules import bundle, handlers
from services.rules.adapters import DecisionLog, DecisionRecords, DecisionStore, RulesStore
from services.rules.engine import Engine
from services.rules.handlers import SOURCE, RulesDeps
from services.rules.live import LiveRulesets


async def bootstrap(nc: Client, settings: Settings, clock: Clock) -> RulesDeps:
    js = nc.jetstream()
    vault = Vault.of(js, settings)
    decisions = DecisionStore(await js.key_value(topology.DECISIONS_BUCKET), vault)
    log = DecisionLog(js, vault, Registry(await js.key_value(topology.REGISTRY_BUCKET), clock))
    deps = RulesDeps(
        js=js,
        live=LiveRulesets(Engine(), bundle.root_of(settings)),
        decisions=decisions,
        records=RecordReader(
            await js.key_value(topology.SUPPORTERS_BUCKET),
            await js.key_value(topology.CASES_BUCKET),
            vault,
        ),
        caseloads=CaseloadReader(await js.key_value(topology.CASELOADS_BUCKET)),
        policies=Policies(
            RecordStore(await js.key_value(topology.ORGANISATIONS_BUCKET), SchedulingSettings)
        ),
        published=RulesStore(await js.key_value(topology.RULES_BUCKET)),
        log=log,
        settings=settings,
        clock=clock,
        decided=UnitOfWork(
            DecisionRecords(decisions),
            clock,
            SOURCE,
            events=EventPublisher(js),
            after_commit=handlers.decision_logger(log),
            event_id=handlers.announcement_id,
        ),
    )
    await handlers.refresh_rulesets(deps)
    return deps
