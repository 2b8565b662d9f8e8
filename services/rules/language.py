"""The rules file language: strict parsing of rulesets, overrides and cases.

See ``rules/README.md`` for the format an ops person writes. Every error names
the file and line. Conditions are checked against the fact model of the
ruleset's kind (``contracts.rules.FACTS``): unknown fields, unknown operators,
and values of the wrong type are errors, never silently accepted.
"""

from __future__ import annotations

import string
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from contracts.rules import EFFECTS, FACTS, OUTCOMES, Kind

# Condition AST ---------------------------------------------------------------

Scalar = Union[int, float, str, bool]  # noqa: UP007  (used in isinstance checks)


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


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    when: Condition
    outcome: str
    reason: str
    effect: dict[str, Any] | None = None


@dataclass(frozen=True)
class Ruleset:
    kind: Kind
    version: str
    description: str
    outcomes: tuple[str, ...]  # precedence: the first outcome among fired rules wins
    default: str  # the outcome when no rule fires
    rules: tuple[Rule, ...]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str
    facts: dict[str, Any]
    outcome: str
    fired: tuple[str, ...] | None  # None: not checked
    line: int


class RulesFileError(ValueError):
    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = str(path), line, message
        super().__init__(f"{path}:{line or '?'}: {message}")


# YAML with line numbers -------------------------------------------------------


_SCALARS = yaml.SafeLoader("")  # only its scalar constructors are used


class Located:
    """A parsed YAML document that remembers the line of every mapping key and item."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[Any, ...], int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            raise RulesFileError(
                path, mark.line + 1 if mark else None, f"not YAML: {error}"
            ) from error
        self.data = self._convert(node, ()) if node is not None else None

    def _convert(self, node: yaml.Node, where: tuple[Any, ...]) -> Any:
        self.lines[where] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            merged: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if key == "<<":  # YAML merge key: explicit keys win over merged ones
                    sources = (
                        value_node.value
                        if isinstance(value_node, yaml.SequenceNode)
                        else [value_node]
                    )
                    for source in sources:
                        merged = {**self._convert(source, (*where, key)), **merged}
                    continue
                if key in result:
                    raise RulesFileError(
                        self.path, key_node.start_mark.line + 1, f"duplicate key {key!r}"
                    )
                self.lines[(*where, key)] = key_node.start_mark.line + 1
                result[key] = self._convert(value_node, (*where, key))
            return {**merged, **result}
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(item, (*where, i)) for i, item in enumerate(node.value)]
        return _SCALARS.construct_object(node)

    def error(self, where: tuple[Any, ...], message: str) -> RulesFileError:
        while where and where not in self.lines:
            where = where[:-1]
        return RulesFileError(self.path, self.lines.get(where), message)


def read(path: Path) -> Located:
    return Located(path, path.read_text())


def read_ruleset_text(label: str, text: str) -> RawRuleset:
    return _ruleset(Located(Path(label), text))


def read_override_text(label: str, text: str) -> Override:
    return _override(Located(Path(label), text))


def _mapping(
    doc: Located, value: Any, where: tuple[Any, ...], allowed: set[str], required: set[str]
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(where, f"expected a mapping with keys {sorted(allowed)}")
    unknown = set(value) - allowed
    if unknown:
        raise doc.error(
            (*where, sorted(unknown)[0]),
            f"unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(allowed))}",
        )
    missing = required - set(value)
    if missing:
        raise doc.error(where, f"missing key {sorted(missing)[0]!r}")
    return value


def _text(doc: Located, value: Any, where: tuple[Any, ...]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error(where, "expected non-empty text")
    return value.strip()


# What one organisation's rules may weigh: the engine is shared by every organisation.
MAX_RULES = 200
MAX_LIST_VALUES = 100
MAX_REASON_CHARS = 300
# durable_rules hangs compiling a ruleset whose rules compare one field with 512 values or
# more, all rules together (measured: 510 compile in 10 ms, 512 never finish); each
# organisation's ruleset is its own, so this bounds one ruleset, not the engine.
MAX_COMPARISONS_PER_FIELD = 500
# The magnitudes of a float the engine reads: JSON writes others with an exponent, which
# fails the evaluation. Literals stay inside; the engine brings facts' floats inside.
ENGINE_NUMBERS = (1e-4, 1e15)


# Field types of a fact model ------------------------------------------------

FieldType = Literal["number", "integer", "bool", "text", "tags", "objects"]


@dataclass(frozen=True)
class FieldSpec:
    type: FieldType
    choices: tuple[str, ...] | None = None
    item_fields: dict[str, FieldSpec] | None = None


def field_specs(model: type[Any]) -> dict[str, FieldSpec]:
    specs = {}
    for name, info in model.model_fields.items():
        specs[name] = _spec(info.annotation)
    return specs


def _spec(annotation: Any) -> FieldSpec:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return FieldSpec("bool")
    if annotation is int:
        return FieldSpec("integer")
    if annotation is float:
        return FieldSpec("number")
    if annotation is str:
        return FieldSpec("text")
    if origin is Literal:
        return FieldSpec("text", choices=tuple(typing.get_args(annotation)))
    if origin is list:
        (item,) = typing.get_args(annotation)
        if item is str:
            return FieldSpec("tags")
        return FieldSpec("objects", item_fields=field_specs(item))
    if isinstance(annotation, types.UnionType):
        raise TypeError(f"fact fields may not be optional: {annotation}")
    raise TypeError(f"unsupported fact field type {annotation}")


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


def _check_scalar(
    doc: Located, spec: FieldSpec, value: Any, where: tuple[Any, ...], name: str
) -> Any:
    kind = spec.type
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise doc.error(where, f"{name} is a number; {value!r} is not")
        if kind == "integer" and isinstance(value, float) and not value.is_integer():
            raise doc.error(where, f"{name} is a whole number; {value!r} is not")
        smallest, largest = ENGINE_NUMBERS
        if isinstance(value, float) and value != 0 and not smallest <= abs(value) < largest:
            said = f"{name}: a number in a rule is 0, or between {smallest} and {largest:.0f}"
            raise doc.error(where, f"{said} either side of it; {value!r} is not")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise doc.error(where, f"{name} is true or false; {value!r} is not")
        return value
    if not isinstance(value, str):
        raise doc.error(where, f"{name} is text; {value!r} is not")
    if spec.choices is not None and value not in spec.choices:
        raise doc.error(where, f"{name} is one of {', '.join(spec.choices)}; {value!r} is not")
    return value


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
            if not isinstance(body, list) or not body:
                raise doc.error(at, f"{key} takes a non-empty list of conditions")
            items = tuple(
                parse_condition(doc, item, (*at, i), specs, params) for i, item in enumerate(body)
            )
            parts.append(AllOf(items) if key == "all" else AnyOf(items))
            continue
        if key not in specs:
            raise doc.error(at, f"unknown field {key!r}; fields: {', '.join(sorted(specs))}")
        parts.extend(_parse_field(doc, key, body, at, specs[key], params))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _parse_field(
    doc: Located, name: str, body: Any, at: tuple[Any, ...], spec: FieldSpec, params: dict[str, Any]
) -> list[Condition]:
    if not isinstance(body, dict) or not body:
        raise doc.error(
            at,
            f"{name}: expected {{operator: value}} with one of "
            f"{', '.join(sorted(OPS_BY_TYPE[spec.type]))}",
        )
    parts: list[Condition] = []
    for op, value in body.items():
        op_at = (*at, op)
        if op not in OPS_BY_TYPE[spec.type]:
            known = COMPARISONS | {"every", "some"}
            what = "unknown operator" if op not in known else f"operator not valid for {spec.type}"
            raise doc.error(
                op_at, f"{what} {op!r} on {name}; use {', '.join(sorted(OPS_BY_TYPE[spec.type]))}"
            )
        if op in ("every", "some"):
            assert spec.item_fields is not None
            inner = parse_condition(doc, value, op_at, spec.item_fields, params)
            if _any_inside(inner, top_level_ok=op == "some"):
                raise doc.error(
                    op_at,
                    f"{op}: 'any' inside {op} is not supported (the engine mis-evaluates it); "
                    "use 'some' with 'any' as its only condition, or split the rule",
                )
            parts.append(Quantified(name, op, inner))
            continue
        value = _param(doc, value, op_at, params)
        if op in LIST_OPS:
            if not isinstance(value, list) or not value:
                raise doc.error(op_at, f"{op} takes a non-empty list")
            if len(value) > MAX_LIST_VALUES:
                # durable_rules hangs on one of more than about 500 values (every org's
                # rules stop with it); far fewer is already a sign of a missing field.
                raise doc.error(
                    op_at, f"{op} takes at most {MAX_LIST_VALUES} values, not {len(value)}"
                )
            item_spec = FieldSpec("text") if spec.type == "tags" else spec
            checked: Any = [
                _check_scalar(doc, item_spec, v, (*op_at, i), name) for i, v in enumerate(value)
            ]
        elif op in ("contains", "lacks"):
            checked = _check_scalar(doc, FieldSpec("text"), value, op_at, f"an item of {name}")
        else:
            checked = _check_scalar(doc, spec, value, op_at, name)
        parts.append(Compare(name, op, checked))
    return parts


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
        _mapping(doc, value, where, {"param"}, {"param"})
        name = value["param"]
        if name not in params:
            raise doc.error(
                where, f"unknown param {name!r}; params: {', '.join(sorted(params)) or 'none'}"
            )
        return params[name]
    return value


# Rulesets, overrides, cases ---------------------------------------------------

RULESET_KEYS = {"ruleset", "version", "description", "outcomes", "default", "params", "rules"}
RULE_KEYS = {"id", "description", "when", "outcome", "reason", "effect"}
OVERRIDE_KEYS = {"ruleset", "version", "description", "params", "disable", "rules"}
CASE_KEYS = {"name", "facts", "expect"}
EXPECT_KEYS = {"outcome", "fired"}
VERSION_PATTERN = r"^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$"


def _kind(doc: Located, value: Any) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise doc.error(
            ("ruleset",), f"ruleset is one of {', '.join(k.value for k in Kind)}"
        ) from None


def _version(doc: Located, value: Any) -> str:
    import re

    if not isinstance(value, str) or not re.match(VERSION_PATTERN, value):
        raise doc.error(
            ("version",), "version is MAJOR.MINOR.PATCH (quote it in YAML), e.g. '1.2.0'"
        )
    return value


@dataclass(frozen=True)
class RawRuleset:
    """A ruleset as written, before params are applied: what overrides change."""

    doc: Located
    kind: Kind
    version: str
    description: str
    outcomes: tuple[str, ...]
    default: str
    params: dict[str, Any]
    rules: dict[str, tuple[tuple[Any, ...], dict[str, Any]]]  # id -> (where, raw rule)


def read_ruleset(path: Path) -> RawRuleset:
    return _ruleset(read(path))


def _ruleset(doc: Located) -> RawRuleset:
    raw = _mapping(
        doc, doc.data, (), RULESET_KEYS, {"ruleset", "version", "outcomes", "default", "rules"}
    )
    kind = _kind(doc, raw["ruleset"])
    outcomes = raw["outcomes"]
    if (
        not isinstance(outcomes, list)
        or not outcomes
        or not all(isinstance(o, str) for o in outcomes)
    ):
        raise doc.error(("outcomes",), "outcomes is a list of words, most important first")
    if set(outcomes) != OUTCOMES[kind] or len(outcomes) != len(set(outcomes)):
        raise doc.error(
            ("outcomes",),
            f"{kind.value} outcomes are {', '.join(sorted(OUTCOMES[kind]))}, each once",
        )
    if raw["default"] not in outcomes:
        raise doc.error(("default",), f"default must be one of the outcomes {outcomes}")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise doc.error(("params",), "params is a mapping of name: value")
    rules = _raw_rules(doc, raw["rules"], ("rules",))
    return RawRuleset(
        doc,
        kind,
        _version(doc, raw["version"]),
        str(raw.get("description", "")).strip(),
        tuple(outcomes),
        raw["default"],
        dict(params),
        rules,
    )


def _raw_rules(
    doc: Located, value: Any, where: tuple[Any, ...]
) -> dict[str, tuple[tuple[Any, ...], dict[str, Any]]]:
    if not isinstance(value, list):
        raise doc.error(where, "rules is a list")
    rules: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for i, rule in enumerate(value):
        at = (*where, i)
        rule = _mapping(doc, rule, at, RULE_KEYS, {"id"})
        rule_id = rule["id"]
        if not isinstance(rule_id, str) or not rule_id.replace("-", "").isalnum():
            raise doc.error((*at, "id"), "a rule id is lower-case words joined by '-'")
        if rule_id in rules:
            raise doc.error((*at, "id"), f"rule id {rule_id!r} is used twice")
        rules[rule_id] = (at, rule)
    return rules


@dataclass(frozen=True)
class Override:
    doc: Located
    kind: Kind
    version: str
    params: dict[str, Any]
    disable: tuple[str, ...]
    rules: dict[str, tuple[tuple[Any, ...], dict[str, Any]]]


def read_override(path: Path) -> Override:
    return _override(read(path))


def _override(doc: Located) -> Override:
    raw = _mapping(doc, doc.data, (), OVERRIDE_KEYS, {"ruleset", "version"})
    disable = raw.get("disable") or []
    if not isinstance(disable, list) or not all(isinstance(d, str) for d in disable):
        raise doc.error(("disable",), "disable is a list of rule ids")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise doc.error(("params",), "params is a mapping of name: value")
    return Override(
        doc,
        _kind(doc, raw["ruleset"]),
        _version(doc, raw["version"]),
        dict(params),
        tuple(disable),
        _raw_rules(doc, raw.get("rules") or [], ("rules",)),
    )


def build(base: RawRuleset, override: Override | None = None) -> Ruleset:
    """Apply an organisation's override to the defaults and check every rule strictly."""
    params = dict(base.params)
    rules: dict[str, tuple[Located, tuple[Any, ...], dict[str, Any]]] = {
        rule_id: (base.doc, where, raw) for rule_id, (where, raw) in base.rules.items()
    }
    version = base.version
    if override is not None:
        if override.kind != base.kind:
            raise override.doc.error(
                ("ruleset",), f"overrides {override.kind.value}, not {base.kind.value}"
            )
        for name, value in override.params.items():
            if name not in params:
                raise override.doc.error(
                    ("params", name), f"unknown param {name!r}; params: {', '.join(sorted(params))}"
                )
            if type(value) is not type(params[name]):
                raise override.doc.error(("params", name), f"{name} must be like {params[name]!r}")
            params[name] = value
        for i, rule_id in enumerate(override.disable):
            if rule_id not in rules:
                raise override.doc.error(("disable", i), f"no rule {rule_id!r} to disable")
            del rules[rule_id]
        for rule_id, (where, raw) in override.rules.items():
            if rule_id in rules:  # change: fields not given keep the default's value
                _, _, current = rules[rule_id]
                rules[rule_id] = (override.doc, where, {**current, **raw})
            else:
                rules[rule_id] = (override.doc, where, raw)
        version = override.version
    if len(rules) > MAX_RULES:
        doc = override.doc if override is not None else base.doc
        raise doc.error(("rules",), f"a ruleset has at most {MAX_RULES} rules, not {len(rules)}")
    specs = field_specs(FACTS[base.kind])
    built = tuple(
        _rule(doc, where, raw, specs, params, base.outcomes, base.kind)
        for doc, where, raw in rules.values()
    )
    compared: Counter[str] = Counter()
    for rule, (doc, where, _) in zip(built, rules.values(), strict=True):
        compared.update(comparisons(rule.when))
        crowded = [name for name, count in compared.items() if count > MAX_COMPARISONS_PER_FIELD]
        if crowded:
            raise doc.error(
                where,
                (
                    f"the ruleset compares {crowded[0]} with {compared[crowded[0]]} values by this "
                    f"rule; at most {MAX_COMPARISONS_PER_FIELD} per field in a ruleset "
                    "(more hang the rules engine)"
                ),
            )
    return Ruleset(base.kind, version, base.description, base.outcomes, base.default, built, params)


def _rule(
    doc: Located,
    where: tuple[Any, ...],
    raw: dict[str, Any],
    specs: dict[str, FieldSpec],
    params: dict[str, Any],
    outcomes: tuple[str, ...],
    kind: Kind,
) -> Rule:
    for key in ("description", "when", "outcome", "reason"):
        if key not in raw:
            raise doc.error(where, f"rule {raw['id']!r} is missing {key!r}")
    if raw["outcome"] not in outcomes:
        raise doc.error((*where, "outcome"), f"outcome must be one of {', '.join(outcomes)}")
    effect = _effect(doc, (*where, "effect"), raw.get("effect"), kind, specs)
    reason = _reason(doc, raw["reason"], (*where, "reason"), specs)
    when: Condition = (
        Always()
        if raw["when"] == "always"
        else parse_condition(doc, raw["when"], (*where, "when"), specs, params)
    )
    return Rule(
        id=raw["id"],
        description=_text(doc, raw["description"], (*where, "description")),
        when=when,
        outcome=raw["outcome"],
        reason=reason,
        effect=effect,
    )


def _reason(doc: Located, value: Any, where: tuple[Any, ...], specs: dict[str, FieldSpec]) -> str:
    """A reason is text with plain ``{field}`` placeholders of the fact. No format specs or
    conversions: ``{days_since_supervision:>1100000}`` passed every check once, then made
    decisions too big to store, and ineligible supporters stayed eligible."""
    reason = _text(doc, value, where)
    if len(reason) > MAX_REASON_CHARS:
        raise doc.error(where, f"a reason has at most {MAX_REASON_CHARS} characters")
    try:
        parts = list(string.Formatter().parse(reason))
    except ValueError as error:
        raise doc.error(where, f"reason: {error}") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in specs or spec or conversion:
            raise doc.error(
                where,
                f"reason may only use plain {{field}} placeholders of the fact, not {{{name}"
                f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}",
            )
    return reason


def _effect(
    doc: Located, where: tuple[Any, ...], effect: Any, kind: Kind, specs: dict[str, FieldSpec]
) -> dict[str, Any] | None:
    if kind != Kind.MATCHING_POLICY:
        if effect is not None:
            raise doc.error(where, f"only matching_policy rules have an effect, not {kind.value}")
        return None
    if not isinstance(effect, dict):
        raise doc.error(
            where,
            "a matching_policy rule needs an effect: filter, weight, exclude_method or proposals",
        )
    for model in EFFECTS:
        if set(effect) <= set(model.model_fields) and set(effect) & {
            "filter",
            "weight",
            "exclude_method",
            "proposals",
        } & set(model.model_fields):
            try:
                model.model_validate(effect)
            except Exception as error:
                raise doc.error(where, f"effect: {error}") from None
            source = effect.get("values_from")
            if source is not None and source not in specs:
                raise doc.error(
                    (*where, "values_from"), f"values_from names no fact field: {source!r}"
                )
            return dict(effect)
    raise doc.error(
        where,
        "effect must be one of: filter (match, values_from, equals), "
        f"weight (points, values_from), exclude_method, proposals (hold_days); "
        f"got {sorted(effect)}",
    )


def read_cases(path: Path, kind: Kind) -> list[Case]:
    doc = read(path)
    if not isinstance(doc.data, list) or not doc.data:
        raise doc.error((), "a cases file is a non-empty list of cases")
    model = FACTS[kind]
    cases = []
    for i, raw in enumerate(doc.data):
        raw = _mapping(doc, raw, (i,), CASE_KEYS, CASE_KEYS)
        expect = _mapping(doc, raw["expect"], (i, "expect"), EXPECT_KEYS, {"outcome"})
        try:
            facts = model.model_validate(raw["facts"]).model_dump(mode="json")
        except Exception as error:
            raise doc.error((i, "facts"), f"facts do not fit {kind.value}: {error}") from None
        fired = expect.get("fired")
        if fired is not None and (
            not isinstance(fired, list) or not all(isinstance(f, str) for f in fired)
        ):
            raise doc.error((i, "expect", "fired"), "fired is a list of rule ids")
        cases.append(
            Case(
                _text(doc, raw["name"], (i, "name")),
                facts,
                str(expect["outcome"]),
                tuple(sorted(fired)) if fired is not None else None,
                doc.lines.get((i,), 0),
            )
        )
    return cases
