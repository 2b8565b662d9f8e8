"""The condition language: a rule's ``when``, parsed and checked against the fact model.

A condition is ``all``/``any`` of conditions, or ``field: {operator: value}``. Fields
are those of the ruleset's facts (``fields``): an unknown field, an operator its type
does not take, and a value of the wrong type are errors on their line, never silently
accepted. Values may name a ruleset param (``{param: name}``). The parsed condition
(``Compare``, ``AllOf``, ``AnyOf``, ``Quantified``, ``Always``) is what the compiler
turns into durable_rules conditions and what the reference evaluator evaluates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from services.rules.fields import FieldSpec, FieldType
from services.rules.located import Located, expect_mapping

# The parsed condition ----------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    field: str
    op: str  # eq ne lt lte gt gte in contains contains_any contains_other_than lacks
    value: Any


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Quantified:
    """``every``/``some`` item of a list of objects matches ``condition`` (over item fields)."""

    field: str
    quantifier: Literal["every", "some"]
    condition: Condition


@dataclass(frozen=True)
class Always:
    """``when: always``: the rule fires on every fact (a policy that always applies)."""


Condition = Compare | AllOf | AnyOf | Quantified | Always


# Operators and values -----------------------------------------------------------

# A tags field's list operators: ``contains_any`` (some item is one of these) and
# ``contains_other_than`` (some item is none of these: an allow-list, refused outside it).
LIST_OPS = {"in", "contains_any", "contains_other_than"}
COMPARISONS = {"eq", "ne", "lt", "lte", "gt", "gte", "contains", "lacks", *LIST_OPS}
OPS_BY_TYPE: dict[FieldType, set[str]] = {
    "number": {"eq", "ne", "lt", "lte", "gt", "gte", "in"},
    "integer": {"eq", "ne", "lt", "lte", "gt", "gte", "in"},
    "bool": {"eq", "ne"},
    "text": {"eq", "ne", "in"},
    "tags": {"contains", "contains_any", "contains_other_than", "lacks"},
    "objects": {"every", "some"},
}

# The values one list operator may take (the engine is shared by every organisation).
MAX_LIST_VALUES = 100
# The magnitudes of a float the engine reads: JSON writes others with an exponent, which
# fails the evaluation. Literals stay inside; the engine brings facts' floats inside.
ENGINE_NUMBERS = (1e-4, 1e15)


# Parsing -------------------------------------------------------------------------


def parse_condition(
    doc: Located,
    raw: Any,
    where: tuple[Any, ...],
    specs: dict[str, FieldSpec],
    params: dict[str, Any],
) -> Condition:
    if not isinstance(raw, dict) or not raw:
        raise doc.error(where, "a condition is a mapping: all/any, or field: {operator: value}")
    parts: list[Condition] = []
    for key, body in raw.items():
        at = (*where, key)
        if key in ("all", "any"):
            parts.append(_all_or_any(doc, key, body, at, specs, params))
            continue
        if key not in specs:
            raise doc.error(at, f"unknown field {key!r}; fields: {', '.join(sorted(specs))}")
        parts.extend(_parse_field(doc, key, body, at, specs[key], params))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _all_or_any(
    doc: Located,
    key: str,
    body: Any,
    at: tuple[Any, ...],
    specs: dict[str, FieldSpec],
    params: dict[str, Any],
) -> AllOf | AnyOf:
    if not isinstance(body, list) or not body:
        raise doc.error(at, f"{key} takes a non-empty list of conditions")
    items = tuple(
        parse_condition(doc, item, (*at, i), specs, params) for i, item in enumerate(body)
    )
    return AllOf(items) if key == "all" else AnyOf(items)


def _parse_field(
    doc: Located, name: str, body: Any, at: tuple[Any, ...], spec: FieldSpec, params: dict[str, Any]
) -> list[Condition]:
    """The conditions on one field: ``{operator: value, ...}``, each operator one of its type's."""
    allowed = OPS_BY_TYPE[spec.type]
    if not isinstance(body, dict) or not body:
        raise doc.error(
            at, f"{name}: expected {{operator: value}} with one of {', '.join(sorted(allowed))}"
        )
    parts: list[Condition] = []
    for op, value in body.items():
        op_at = (*at, op)
        if op not in allowed:
            known = COMPARISONS | {"every", "some"}
            what = "unknown operator" if op not in known else f"operator not valid for {spec.type}"
            raise doc.error(op_at, f"{what} {op!r} on {name}; use {', '.join(sorted(allowed))}")
        if op in ("every", "some"):
            parts.append(_quantified(doc, name, op, value, op_at, spec, params))
        else:
            parts.append(_compare(doc, name, op, _param(doc, value, op_at, params), op_at, spec))
    return parts


def _quantified(
    doc: Located,
    name: str,
    op: Literal["every", "some"],
    value: Any,
    op_at: tuple[Any, ...],
    spec: FieldSpec,
    params: dict[str, Any],
) -> Quantified:
    assert spec.item_fields is not None
    inner = parse_condition(doc, value, op_at, spec.item_fields, params)
    if _any_inside(inner, top_level_ok=op == "some"):
        raise doc.error(
            op_at,
            f"{op}: 'any' inside {op} is not supported (the engine mis-evaluates it); "
            "use 'some' with 'any' as its only condition, or split the rule",
        )
    return Quantified(name, op, inner)


def _any_inside(condition: Condition, top_level_ok: bool) -> bool:
    if isinstance(condition, AnyOf):
        return not top_level_ok or any(_any_inside(c, False) for c in condition.items)
    if isinstance(condition, AllOf):
        return any(_any_inside(c, False) for c in condition.items)
    if isinstance(condition, Quantified):
        return _any_inside(condition.condition, False)
    return False


def _param(doc: Located, value: Any, where: tuple[Any, ...], params: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        expect_mapping(doc, value, where, {"param"}, {"param"})
        name = value["param"]
        if name not in params:
            raise doc.error(
                where, f"unknown param {name!r}; params: {', '.join(sorted(params)) or 'none'}"
            )
        return params[name]
    return value


def _compare(
    doc: Located, name: str, op: str, value: Any, op_at: tuple[Any, ...], spec: FieldSpec
) -> Compare:
    checked: Any
    if op in LIST_OPS:
        checked = _check_list(doc, name, op, value, op_at, spec)
    elif op in ("contains", "lacks"):
        checked = _check_scalar(doc, FieldSpec("text"), value, op_at, f"an item of {name}")
    else:
        checked = _check_scalar(doc, spec, value, op_at, name)
    return Compare(name, op, checked)


def _check_list(
    doc: Located, name: str, op: str, value: Any, op_at: tuple[Any, ...], spec: FieldSpec
) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise doc.error(op_at, f"{op} takes a non-empty list")
    if len(value) > MAX_LIST_VALUES:
        # durable_rules hangs on one of more than about 500 values (every org's
        # rules stop with it); far fewer is already a sign of a missing field.
        raise doc.error(op_at, f"{op} takes at most {MAX_LIST_VALUES} values, not {len(value)}")
    item_spec = FieldSpec("text") if spec.type == "tags" else spec
    return [_check_scalar(doc, item_spec, v, (*op_at, i), name) for i, v in enumerate(value)]


def _check_scalar(
    doc: Located, spec: FieldSpec, value: Any, where: tuple[Any, ...], name: str
) -> Any:
    if spec.type in ("number", "integer"):
        return _check_number(doc, spec, value, where, name)
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise doc.error(where, f"{name} is true or false; {value!r} is not")
        return value
    if not isinstance(value, str):
        raise doc.error(where, f"{name} is text; {value!r} is not")
    if spec.choices is not None and value not in spec.choices:
        raise doc.error(where, f"{name} is one of {', '.join(spec.choices)}; {value!r} is not")
    return value


def _check_number(
    doc: Located, spec: FieldSpec, value: Any, where: tuple[Any, ...], name: str
) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise doc.error(where, f"{name} is a number; {value!r} is not")
    if spec.type == "integer" and isinstance(value, float) and not value.is_integer():
        raise doc.error(where, f"{name} is a whole number; {value!r} is not")
    smallest, largest = ENGINE_NUMBERS
    if isinstance(value, float) and value != 0 and not smallest <= abs(value) < largest:
        said = f"{name}: a number in a rule is 0, or between {smallest} and {largest:.0f}"
        raise doc.error(where, f"{said} either side of it; {value!r} is not")
    return value


# Walking a parsed condition --------------------------------------------------------


def comparisons(condition: Condition, prefix: str = "") -> Counter[str]:
    """How many values a condition compares each fact field with, as the engine counts
    them (an ``in`` of ten values is ten comparisons); item fields are ``list.field``."""
    match condition:
        case Compare(name, op, value):
            return Counter({prefix + name: len(value) if op in LIST_OPS else 1})
        case AllOf(items) | AnyOf(items):
            return sum((comparisons(item, prefix) for item in items), Counter())
        case Quantified(name, _, inner):
            return comparisons(inner, f"{prefix}{name}.")
    return Counter()
