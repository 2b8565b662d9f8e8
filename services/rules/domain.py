"""Rules decisions: a fact and a live ruleset in, a decision out. No I/O.

The ruleset decides; this module only assembles the decision: which version
decided, which rules fired and why, for eligibility the day it next lapses,
and for a matching policy its effects with the client's values filled in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from contracts.rules import FiredRule, Kind, RulesDecision, read_effect
from services.rules.bundle import Loaded

ELIGIBLE = "eligible"
# How far ahead to look for the day eligibility lapses with no new input.
LAPSE_HORIZON_DAYS = 3 * 366


def decide(
    loaded: Loaded,
    subject_id: str,
    facts: dict[str, Any],
    now: datetime,
    lapses_on: date | None = None,
) -> RulesDecision:
    outcome, fired = loaded.decide(facts)
    if loaded.ref.kind == Kind.MATCHING_POLICY:
        fired = [_with_values(rule, facts) for rule in fired]
    return RulesDecision(
        kind=loaded.ref.kind,
        subject_id=subject_id,
        outcome=outcome,
        fired=fired,
        ruleset=loaded.ref,
        decided_at=now,
        lapses_on=lapses_on,
        facts_sha256=facts_hash(facts),
    )


def facts_hash(facts: dict[str, Any]) -> str:
    """SHA-256 of the facts as canonical JSON: shows which facts a logged decision was made
    on (hash the facts again and compare) without keeping vetting or safety details."""
    canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _with_values(rule: FiredRule, facts: dict[str, Any]) -> FiredRule:
    effect = dict(rule.effect or {})
    source = effect.get("values_from")
    if source is not None:
        value = facts[source]
        effect["values"] = value if isinstance(value, list) else [value]
    # Matching reads it in this form: one it could not read fails here, with the ruleset.
    read_effect(effect)
    return rule.model_copy(update={"effect": effect})


def lapse_date(
    loaded: Loaded, facts_on: Callable[[date], dict[str, Any]], today: date
) -> date | None:
    """The first day after ``today`` on which an eligible supporter is ineligible with no
    new input (a record check expires, supervision falls overdue), or None within the
    horizon. Vetting only decays with time, so a binary search over days finds it."""
    if loaded.decide(facts_on(today))[0] != ELIGIBLE:
        return None
    low, high = 0, LAPSE_HORIZON_DAYS  # eligible on today + low
    if loaded.decide(facts_on(today + timedelta(days=high)))[0] == ELIGIBLE:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        if loaded.decide(facts_on(today + timedelta(days=middle)))[0] == ELIGIBLE:
            low = middle
        else:
            high = middle
    return today + timedelta(days=high)


def same_decision(a: RulesDecision | None, b: RulesDecision) -> bool:
    """Whether a new decision says nothing new: the same outcome, fired rules, ruleset and
    lapse, whenever it was taken and on whichever facts (eligibility's change every day)."""
    if a is None:
        return False
    same = {"decided_at", "decision_id", "facts_sha256"}
    return a.model_dump(exclude=same) == b.model_dump(exclude=same)
