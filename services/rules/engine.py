"""durable_rules, wrapped. The only module that imports ``durable``.

Guards against each trap measured in the field notes:
- the Host's background threads (wrong empty results, segfaults after
  out-of-order deletes) are never started: ``_run`` does nothing, and so
  no engine timers are used (ages come in the fact);
- facts are asserted, not posted, so every matching rule fires;
- each rule gets its own action that records its id into the session state
  (the action context does not say which rule fired); actions take one
  parameter (two would make them async and never complete);
- every condition is ANDed with a discriminator, so the session state that
  the engine re-asserts after each action never matches a rule;
- an exception inside an action (swallowed into the state) is raised;
- a fact no rule matches is refused by the engine and leaves no session;
  deleting that sid then crashed the process (seen here). So every ruleset
  has one more rule that matches every fact: every evaluation is handled,
  has a session, and that session is deleted;
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
import threading
from collections.abc import Callable, Mapping
from typing import Any

import durable_rules_engine  # type: ignore[import-not-found]
from durable.engine import Host, MessageNotHandledException

from services.rules.compiler import DISCRIMINATOR
from services.rules.language import ENGINE_NUMBERS


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


FIRED = "fired"
SEEN = "seen"


class EngineError(RuntimeError):
    pass


class _QuietHost(Host):  # type: ignore[misc]
    def _run(self) -> None:  # no dispatch or timer threads
        return None


def _seen(c: Any) -> None:
    c.s[SEEN] = True


def _recorder(rule_id: str) -> Callable[[Any], None]:
    def record(c: Any) -> None:
        c.s[FIRED] = [*(c.s[FIRED] or []), rule_id]

    return record


class Engine:
    """Rulesets registered by name; evaluate one fact at a time."""

    def __init__(self) -> None:
        self._host = _QuietHost()
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._retired: set[str] = set()
        self._sids = itertools.count()

    def register(self, name: str, conditions: Mapping[str, dict[str, Any]]) -> None:
        """``conditions``: rule id -> durable condition (from ``compiler``)."""
        definition = {
            f"r{index}": {
                "all": [{"m": {"$and": [{DISCRIMINATOR: 1}, condition]}}],
                "run": _recorder(rule_id),
            }
            for index, (rule_id, condition) in enumerate(conditions.items())
        }
        definition["every-fact"] = {"all": [{"m": {DISCRIMINATOR: 1}}], "run": _seen}
        with self._lock:
            if name in self._in_flight:
                raise EngineError(f"ruleset {name} is already registered")
            self._host.register_rulesets({name: copy.deepcopy(definition)})
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
            sid = str(next(self._sids))
        try:
            payload = {**_readable(fact), **(extra or {}), "sid": sid, DISCRIMINATOR: 1}
            try:
                self._host.assert_fact(name, payload)
            except MessageNotHandledException as error:  # cannot happen: "every-fact" matches
                raise EngineError(f"fact not handled by {name}") from error
            state = self._host.get_state(name, sid)
            if not state.get(SEEN):
                raise EngineError(f"evaluation on {name} did not complete")
            if state.get("exception"):
                raise EngineError(f"rule action failed: {state['exception']}")
            # A rule whose condition matches along two branches of an "any" is activated
            # twice; it fired once.
            return list(dict.fromkeys(state.get(FIRED) or []))
        finally:
            try:
                self._host.delete_state(name, sid)
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
                self._retired.discard(name)

    @property
    def registered(self) -> list[str]:
        with self._lock:
            return sorted(self._in_flight)
