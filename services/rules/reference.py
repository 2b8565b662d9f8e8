"""An independent evaluator of the rules language, in plain Python.

It shares nothing with the durable_rules path but the parsed condition, and
serves as the oracle in differential tests: on any fact, the set of rules it
says fire must equal the set durable_rules fires.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from services.rules.conditions import AllOf, Always, AnyOf, Compare, Condition, Quantified
from services.rules.language import Ruleset

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "in": lambda actual, options: any(actual == option for option in options),
    "contains": lambda items, value: value in items,
    "contains_any": lambda items, values: any(value in items for value in values),
    "contains_other_than": lambda items, values: any(item not in values for item in items),
    "lacks": lambda items, value: value not in items,
}


def holds(condition: Condition, fact: Mapping[str, Any]) -> bool:
    match condition:
        case Always():
            return True
        case AllOf(items):
            return all(holds(c, fact) for c in items)
        case AnyOf(items):
            return any(holds(c, fact) for c in items)
        case Quantified(field, quantifier, inner):
            return _quantified(quantifier, inner, fact[field])
        case Compare(field, op, value):
            return _COMPARE[op](fact[field], value)
    raise ValueError(f"cannot evaluate {condition!r}")


def _quantified(quantifier: str, inner: Condition, items: list[Mapping[str, Any]]) -> bool:
    if quantifier == "every":
        # "every" needs at least one item: an empty list of parties has not consented.
        return bool(items) and all(holds(inner, item) for item in items)
    return any(holds(inner, item) for item in items)


def fired(ruleset: Ruleset, fact: Mapping[str, Any]) -> list[str]:
    return [rule.id for rule in ruleset.rules if holds(rule.when, fact)]
