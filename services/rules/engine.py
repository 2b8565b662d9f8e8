"""durable_rules, wrapped. The only module that imports ``durable``.

Guards against each trap measured in the field notes:
- the Host's background threads (wrong empty results, segfaults after
  out-of-order deletes) are never started: ``_run`` does nothing, and so
  no engine timers are used (ages come in the fact);
- facts are asserted, not posted, so every matching rule fires;
- which rules fired is read from the engine's queue of actions, one C call per
  fired rule: no Python action runs and the session state is never turned to
  JSON and back. (durable_rules' own way, a Python action per rule writing
  into the state, costs 4x as much; ``bench/rules.py`` keeps it as the
  baseline.) Each rule still gets a no-op action, which registration needs;
- every condition is ANDed with a discriminator, so the session state (the
  engine keeps it as a fact too) never matches a rule;
- a fact no rule matches is refused by the engine and leaves no session;
  deleting that sid then crashed the process (seen here). So every ruleset
  has one more rule that matches every fact: every evaluation is handled,
  has a session, and that session is deleted (its firing also shows the
  evaluation ran to the end);
- one session per evaluation, with a unique sid and ``delete_state`` in a
  ``finally``: at most one live session per evaluation in flight, far below
  the 1024-session limit as long as evaluations are not unbounded in number;
- definitions are deep-copied before registration (it deletes ``run`` keys);
- a ruleset name is registered once: versions get unique names, and an old
  version is deleted through the engine once no evaluation is using it;
- a number JSON writes with an exponent (1e+16, 1e-07) fails the evaluation
  ("Could not delete state", 309): a fact's floats are brought within
  ``ENGINE_NUMBERS`` (the rules language keeps literals inside it, so every
  comparison comes out the same).
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from collections.abc import Mapping
from typing import Any

import durable_rules_engine  # type: ignore[import-not-found]
from durable.engine import Host

from services.rules.compiler import DISCRIMINATOR
from services.rules.conditions import ENGINE_NUMBERS


def engine_number(value: Any) -> Any:
    """A float the engine can read, ordered as ``value`` is against every literal a rule
    may hold (between ``ENGINE_NUMBERS``, or 0)."""
    if not isinstance(value, float) or value == 0:
        return value
    smallest, largest = ENGINE_NUMBERS
    magnitude = min(max(abs(value), smallest), largest)
    return magnitude if value > 0 else -magnitude


def _readable(value: Any) -> Any:
    if isinstance(value, float):
        return engine_number(value)
    if isinstance(value, list):
        return [_readable(item) for item in value]
    if isinstance(value, dict):
        return {key: _readable(item) for key, item in value.items()}
    return value


EVERY_FACT = "every-fact"


class EngineError(RuntimeError):
    pass


class _QuietHost(Host):  # type: ignore[misc]
    def _run(self) -> None:  # no dispatch or timer threads
        return None


def _no_action(c: Any) -> None:
    """Never called: ``evaluate`` reads fired rules from the queue rather than running them."""


def _rule_name(action: str) -> str:
    """The rule an action belongs to: the engine writes ``{"r3":{...}}`` (names are ours and
    hold no quote)."""
    if not action.startswith('{"'):
        raise EngineError(f"unexpected action from the engine: {action[:80]!r}")
    return action[2 : action.index('"', 2)]


class Engine:
    """Rulesets registered by name; evaluate one fact at a time."""

    def __init__(self) -> None:
        self._host = _QuietHost()
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        # name -> the engine's handle and rule id by rule name (r0, r1...)
        self._handles: dict[str, tuple[int, dict[str, str]]] = {}
        self._retired: set[str] = set()
        self._sids = itertools.count()

    def register(self, name: str, conditions: Mapping[str, dict[str, Any]]) -> None:
        """``conditions``: rule id -> durable condition (from ``compiler``)."""
        definition: dict[str, Any] = {
            f"r{index}": {
                "all": [{"m": {"$and": [{DISCRIMINATOR: 1}, condition]}}],
                "run": _no_action,
            }
            for index, condition in enumerate(conditions.values())
        }
        definition[EVERY_FACT] = {"all": [{"m": {DISCRIMINATOR: 1}}], "run": _no_action}
        rule_ids = {f"r{index}": rule_id for index, rule_id in enumerate(conditions)}
        with self._lock:
            if name in self._in_flight:
                raise EngineError(f"ruleset {name} is already registered")
            self._host.register_rulesets({name: copy.deepcopy(definition)})
            self._handles[name] = (self._host.get_ruleset(name)._handle, rule_ids)
            self._in_flight[name] = 0

    def acquire(self, name: str) -> None:
        """Hold ``name`` live (even if retired meanwhile) until ``release``."""
        with self._lock:
            if name not in self._in_flight:
                raise EngineError(f"ruleset {name} is not registered")
            self._in_flight[name] += 1

    def release(self, name: str) -> None:
        self._release(name)

    def evaluate(
        self, name: str, fact: Mapping[str, Any], extra: Mapping[str, Any] | None = None
    ) -> list[str]:
        """The ids of the rules that fire on ``fact`` (plus ``extra`` fields), in firing order."""
        with self._lock:
            if name not in self._in_flight:
                raise EngineError(f"ruleset {name} is not registered")
            self._in_flight[name] += 1
            handle, rule_ids = self._handles[name]
            sid = str(next(self._sids))
        try:
            payload = {**_readable(fact), **(extra or {}), "sid": sid, DISCRIMINATOR: 1}
            status, state = durable_rules_engine.assert_fact(
                handle, json.dumps(payload, ensure_ascii=False)
            )
            if status != 0:  # cannot happen: "every-fact" matches
                raise EngineError(f"fact not handled by {name} (status {status})")
            names = []
            started = durable_rules_engine.start_action_for_state(handle, state)
            action = started[1] if started else None
            while action:
                names.append(_rule_name(action))
                action = durable_rules_engine.complete_and_start_action(handle, state)
            if EVERY_FACT not in names:
                raise EngineError(f"evaluation on {name} did not complete")
            # A rule whose condition matches along two branches of an "any" is activated
            # twice; it fired once.
            return list(dict.fromkeys(rule_ids[n] for n in names if n != EVERY_FACT))
        finally:
            try:
                durable_rules_engine.delete_state(handle, sid)
            finally:
                self._release(name)

    def retire(self, name: str) -> None:
        """Stop new evaluations of ``name``; delete it once those in flight finish."""
        with self._lock:
            self._retired.add(name)
        self._release(name, started=False)

    def _release(self, name: str, started: bool = True) -> None:
        with self._lock:
            if started:
                self._in_flight[name] -= 1
            if name in self._retired and self._in_flight.get(name) == 0:
                ruleset = self._host._ruleset_directory.pop(name)
                self._host._ruleset_list.remove(ruleset)
                durable_rules_engine.delete_ruleset(ruleset._handle)
                del self._in_flight[name]
                del self._handles[name]
                self._retired.discard(name)

    @property
    def registered(self) -> list[str]:
        with self._lock:
            return sorted(self._in_flight)
