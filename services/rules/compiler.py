"""Conditions of the rules language, compiled to durable_rules' JSON conditions.

durable_rules has no negation (``$not`` is refused; ``$neq`` against a list
item crashed the process here), so ``lacks`` is lowered to a flag added to
the fact before it is asserted: ``derived_flags`` lists them, ``flags_of``
computes them for a fact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.rules.conditions import AllOf, Always, AnyOf, Compare, Condition, Quantified

# ANDed into every rule, and set on every asserted fact: the session state the
# engine re-asserts after an action lacks it, so it never matches a rule.
DISCRIMINATOR = "__fact"

_ORDER = {"lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte", "ne": "$neq"}


def compile_condition(condition: Condition, prefix: str = "") -> dict[str, Any]:
    """``prefix`` is ``$i.`` inside ``every``/``some``, where fields belong to the list item."""
    match condition:
        case Always():
            return {DISCRIMINATOR: 1}
        case AllOf(items):
            return {"$and": [compile_condition(c, prefix) for c in items]}
        case AnyOf(items):
            return {"$or": [compile_condition(c, prefix) for c in items]}
        case Quantified():
            return _quantified(condition, prefix)
        case Compare(field, op, value):
            return _compare(prefix + field, op, value, field, prefix)
    raise ValueError(f"cannot compile {condition!r}")


def _quantified(condition: Quantified, prefix: str) -> dict[str, Any]:
    match condition:
        case Quantified(field, "some", AnyOf(options)):
            # durable_rules ignores all but one branch of an $or inside $iany (seen here):
            # "some item matches a or b" is compiled as "some matches a, or some matches b".
            return {
                "$or": [compile_condition(Quantified(field, "some", o), prefix) for o in options]
            }
        case Quantified(field, quantifier, inner):
            if has_any_of(inner):
                raise ValueError("'any' inside every/some is not supported by the engine")
            operator = "$iall" if quantifier == "every" else "$iany"
            return {operator: {prefix + field: compile_condition(inner, "$i.")}}
    raise ValueError(f"cannot compile {condition!r}")


def _compare(name: str, op: str, value: Any, field: str, prefix: str) -> dict[str, Any]:
    """One comparison of the fact field ``name`` (``field`` with its ``prefix``)."""
    if op == "eq":
        return {name: value}
    if op in _ORDER:
        return {_ORDER[op]: {name: value}}
    if op == "in":
        return _one_of([{name: v} for v in value])
    if op == "lacks":
        if prefix:
            raise ValueError("lacks is not supported inside every/some")
        return {flag_name(field, value): False}
    return _some_item(name, op, value)


def _some_item(name: str, op: str, value: Any) -> dict[str, Any]:
    """The operators on a list of tags that some item of it matches."""
    if op == "contains":
        return {"$iany": {name: {"$i": value}}}
    if op == "contains_any":
        return {"$iany": {name: _one_of([{"$i": v} for v in value])}}
    if op == "contains_other_than":
        return {"$iany": {name: {"$and": [{"$neq": {"$i": v}} for v in value]}}}
    raise ValueError(f"cannot compile the operator {op!r}")


def has_any_of(condition: Condition) -> bool:
    match condition:
        case AnyOf():
            return True
        case AllOf(items):
            return any(has_any_of(c) for c in items)
        case Quantified(_, _, inner):
            return has_any_of(inner)
    return False


def flag_name(field: str, value: str) -> str:
    return f"__has__{field}__{value}"


def derived_flags(condition: Condition) -> set[tuple[str, str]]:
    match condition:
        case AllOf(items) | AnyOf(items):
            return set().union(*(derived_flags(c) for c in items))
        case Compare(field, "lacks", value):
            return {(field, value)}
    return set()


def flags_of(fact: Mapping[str, Any], flags: Iterable[tuple[str, str]]) -> dict[str, bool]:
    return {flag_name(f, v): v in fact[f] for f, v in flags}


def _one_of(options: list[dict[str, Any]]) -> dict[str, Any]:
    return options[0] if len(options) == 1 else {"$or": options}
