"""The rules file language: strict parsing of rulesets and overrides, built into a Ruleset.

See ``rules/README.md`` for the format an ops person writes. A default ruleset is read
as written (``RawRuleset``), an organisation's ``Override`` changes its params and
rules, and ``build`` checks every rule strictly into the ``Ruleset`` the engine runs.
Every error names the file and line (``located``); conditions are parsed and checked
against the fact model of the ruleset's kind (``conditions``); the test cases of a
ruleset are read by ``cases``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from contracts.rules import EFFECTS, FACTS, OUTCOMES, Kind
from services.rules.conditions import Always, Condition, comparisons, parse_condition
from services.rules.fields import FieldSpec, field_specs
from services.rules.located import Located, expect_mapping, expect_text


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    when: Condition
    outcome: str
    reason: str
    effect: dict[str, Any] | None = None
    # What a coordinator reads in place of the id: plain words, never about a person. None
    # only in a version published before labels were required (``build(strict=False)``).
    label: str | None = None


@dataclass(frozen=True)
class Ruleset:
    kind: Kind
    version: str
    description: str
    outcomes: tuple[str, ...]  # precedence: the first outcome among fired rules wins
    default: str  # the outcome when no rule fires
    rules: tuple[Rule, ...]
    params: dict[str, Any] = field(default_factory=dict)


# What one organisation's rules may weigh: the engine is shared by every organisation.
MAX_RULES = 200
MAX_REASON_CHARS = 300
MAX_LABEL_CHARS = 60
# durable_rules hangs compiling a ruleset whose rules compare one field with 512 values or
# more, all rules together (measured: 510 compile in 10 ms, 512 never finish); each
# organisation's ruleset is its own, so this bounds one ruleset, not the engine.
MAX_COMPARISONS_PER_FIELD = 500


# Rulesets and overrides, as written ---------------------------------------------

RULESET_KEYS = {"ruleset", "version", "description", "outcomes", "default", "params", "rules"}
RULE_KEYS = {"id", "label", "description", "when", "outcome", "reason", "effect"}
OVERRIDE_KEYS = {"ruleset", "version", "description", "params", "disable", "rules"}
VERSION_PATTERN = r"^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$"

RawRules: TypeAlias = dict[str, tuple[tuple[Any, ...], dict[str, Any]]]  # id -> (where, rule)


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
    rules: RawRules


@dataclass(frozen=True)
class Override:
    doc: Located
    kind: Kind
    version: str
    params: dict[str, Any]
    disable: tuple[str, ...]
    rules: RawRules


def read_ruleset_text(label: str, text: str) -> RawRuleset:
    return _ruleset(Located(Path(label), text))


def read_override_text(label: str, text: str) -> Override:
    return _override(Located(Path(label), text))


def _ruleset(doc: Located) -> RawRuleset:
    raw = expect_mapping(
        doc, doc.data, (), RULESET_KEYS, {"ruleset", "version", "outcomes", "default", "rules"}
    )
    kind = _kind(doc, raw["ruleset"])
    outcomes = _outcomes(doc, raw["outcomes"], kind)
    if raw["default"] not in outcomes:
        raise doc.error(("default",), f"default must be one of the outcomes {outcomes}")
    params = _params(doc, raw)
    rules = _raw_rules(doc, raw["rules"], ("rules",))
    return RawRuleset(
        doc,
        kind,
        _version(doc, raw["version"]),
        str(raw.get("description", "")).strip(),
        tuple(outcomes),
        raw["default"],
        params,
        rules,
    )


def _override(doc: Located) -> Override:
    raw = expect_mapping(doc, doc.data, (), OVERRIDE_KEYS, {"ruleset", "version"})
    disable = raw.get("disable") or []
    if not isinstance(disable, list) or not all(isinstance(d, str) for d in disable):
        raise doc.error(("disable",), "disable is a list of rule ids")
    params = _params(doc, raw)
    return Override(
        doc,
        _kind(doc, raw["ruleset"]),
        _version(doc, raw["version"]),
        params,
        tuple(disable),
        _raw_rules(doc, raw.get("rules") or [], ("rules",)),
    )


def _kind(doc: Located, value: Any) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise doc.error(
            ("ruleset",), f"ruleset is one of {', '.join(k.value for k in Kind)}"
        ) from None


def _version(doc: Located, value: Any) -> str:
    if not isinstance(value, str) or not re.match(VERSION_PATTERN, value):
        raise doc.error(
            ("version",), "version is MAJOR.MINOR.PATCH (quote it in YAML), e.g. '1.2.0'"
        )
    return value


def _outcomes(doc: Located, outcomes: Any, kind: Kind) -> list[str]:
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
    return outcomes


def _params(doc: Located, raw: dict[str, Any]) -> dict[str, Any]:
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise doc.error(("params",), "params is a mapping of name: value")
    return dict(params)


def _raw_rules(doc: Located, value: Any, where: tuple[Any, ...]) -> RawRules:
    if not isinstance(value, list):
        raise doc.error(where, "rules is a list")
    rules: RawRules = {}
    for i, rule in enumerate(value):
        at = (*where, i)
        rule = expect_mapping(doc, rule, at, RULE_KEYS, {"id"})
        rule_id = rule["id"]
        if not isinstance(rule_id, str) or not rule_id.replace("-", "").isalnum():
            raise doc.error((*at, "id"), "a rule id is lower-case words joined by '-'")
        if rule_id in rules:
            raise doc.error((*at, "id"), f"rule id {rule_id!r} is used twice")
        rules[rule_id] = (at, rule)
    return rules


# Building: the override applied, every rule checked --------------------------------

# A rule as written, with the file it was written in (the default's or the override's).
Placed: TypeAlias = tuple[Located, tuple[Any, ...], dict[str, Any]]


def build(base: RawRuleset, override: Override | None = None, *, strict: bool = True) -> Ruleset:
    """Apply an organisation's override to the defaults and check every rule strictly.
    ``strict=False`` only for a version already published: one published before labels
    were required still runs, its rules named by their ids."""
    params = dict(base.params)
    rules: dict[str, Placed] = {
        rule_id: (base.doc, where, raw) for rule_id, (where, raw) in base.rules.items()
    }
    version = base.version
    if override is not None:
        if override.kind != base.kind:
            raise override.doc.error(
                ("ruleset",), f"overrides {override.kind.value}, not {base.kind.value}"
            )
        _override_params(override, params)
        _override_rules(override, rules)
        version = override.version
    if len(rules) > MAX_RULES:
        doc = override.doc if override is not None else base.doc
        raise doc.error(("rules",), f"a ruleset has at most {MAX_RULES} rules, not {len(rules)}")
    specs = field_specs(FACTS[base.kind])
    built = tuple(
        _rule(doc, where, raw, specs, params, base.outcomes, base.kind, strict)
        for doc, where, raw in rules.values()
    )
    _check_comparisons(built, list(rules.values()))
    return Ruleset(base.kind, version, base.description, base.outcomes, base.default, built, params)


def _override_params(override: Override, params: dict[str, Any]) -> None:
    """Change ``params`` as the override says: only those there are, each to a like value."""
    for name, value in override.params.items():
        if name not in params:
            raise override.doc.error(
                ("params", name), f"unknown param {name!r}; params: {', '.join(sorted(params))}"
            )
        if type(value) is not type(params[name]):
            raise override.doc.error(("params", name), f"{name} must be like {params[name]!r}")
        params[name] = value


def _override_rules(override: Override, rules: dict[str, Placed]) -> None:
    """Disable, change and add ``rules`` as the override says."""
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


def _check_comparisons(built: tuple[Rule, ...], placed: list[Placed]) -> None:
    """No field compared with more values than the engine takes, all rules together: the
    error names the rule that goes past the limit."""
    compared: Counter[str] = Counter()
    for rule, (doc, where, _) in zip(built, placed, strict=True):
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


def _rule(
    doc: Located,
    where: tuple[Any, ...],
    raw: dict[str, Any],
    specs: dict[str, FieldSpec],
    params: dict[str, Any],
    outcomes: tuple[str, ...],
    kind: Kind,
    strict: bool = True,
) -> Rule:
    required = ("label", "description", "when", "outcome", "reason")
    for key in required if strict else required[1:]:
        if key not in raw:
            raise doc.error(where, f"rule {raw['id']!r} is missing {key!r}{_WHY.get(key, '')}")
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
        description=expect_text(doc, raw["description"], (*where, "description")),
        when=when,
        outcome=raw["outcome"],
        reason=reason,
        effect=effect,
        label=_label(doc, raw["label"], (*where, "label")) if "label" in raw else None,
    )


_WHY = {
    "label": (
        ": a few plain words a coordinator reads in place of the rule id, "
        "e.g. label: Record check expired"
    )
}


def _label(doc: Located, value: Any, where: tuple[Any, ...]) -> str:
    """A label is shown to every coordinator wherever the rule is named: plain words, short,
    and never a fact (no ``{field}``: what it says about a person belongs in the reason)."""
    label = expect_text(doc, value, where)
    if len(label) > MAX_LABEL_CHARS or "\n" in label:
        raise doc.error(where, f"a label is one line of at most {MAX_LABEL_CHARS} characters")
    if "{" in label or "}" in label:
        raise doc.error(where, "a label names the rule for everyone: no {field} placeholders")
    return label


def _reason(doc: Located, value: Any, where: tuple[Any, ...], specs: dict[str, FieldSpec]) -> str:
    """A reason is text with plain ``{field}`` placeholders of the fact. No format specs or
    conversions: ``{days_since_supervision:>1100000}`` passed every check once, then made
    decisions too big to store, and ineligible supporters stayed eligible."""
    reason = expect_text(doc, value, where)
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
