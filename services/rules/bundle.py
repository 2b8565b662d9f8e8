"""Rules folders: defaults plus organisation overrides, resolved, hashed, compiled and tested.

    rules/default/<kind>/ruleset.yaml   the default ruleset of a kind
    rules/default/<kind>/cases.yaml     its test cases
    rules/orgs/<org>/<kind>/override.yaml   what one organisation changes
    rules/orgs/<org>/<kind>/cases.yaml      its cases (same name replaces a default case)

A ``Source`` is the text of a default and its override: what is published and
what every replica compiles. A ``Loaded`` ruleset is registered in the engine
under a unique name and evaluates facts into outcome and fired rules.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contracts.rules import FACTS, FiredRule, Kind, RulesetRef
from runtime.settings import Settings
from services.rules import compiler, language, reference
from services.rules.cases import Case, read_cases
from services.rules.engine import Engine
from services.rules.fields import FieldSpec, field_specs
from services.rules.located import RulesFileError


def _shipped_root() -> Path:
    """The rules shipped with the code: the checkout's, else ./rules (an image's)."""
    beside = Path(__file__).resolve().parents[2] / "rules"
    return beside if (beside / "default").is_dir() else Path.cwd() / "rules"


DEFAULT_ROOT = _shipped_root()


def root_of(settings: Settings) -> Path:
    """The deployment's rules folder (``ALONGSIDE_RULES_DIR``), else the shipped one."""
    return settings.rules_dir or DEFAULT_ROOT


_names = itertools.count()
# Filled-in reasons kept per version (values like "35 days" repeat across supporters).
RECENT_REASONS = 4096


@dataclass(frozen=True)
class Source:
    kind: Kind
    org: str  # "default" for the defaults themselves
    default_text: str
    override_text: str | None = None
    default_label: str = "ruleset.yaml"
    override_label: str = "override.yaml"

    def resolve(self, *, strict: bool = True) -> language.Ruleset:
        """The ruleset these texts make; ``strict=False`` for a version already published
        (see ``language.build``)."""
        base = language.read_ruleset_text(self.default_label, self.default_text)
        override = (
            language.read_override_text(self.override_label, self.override_text)
            if self.override_text is not None
            else None
        )
        if base.kind != self.kind:
            raise RulesFileError(self.default_label, 1, f"expected a {self.kind.value} ruleset")
        return language.build(base, override, strict=strict)


def read_source(root: Path, kind: Kind, org: str | None = None) -> Source:
    default = root / "default" / kind.value / "ruleset.yaml"
    if not default.exists():
        raise RulesFileError(default, None, f"no default {kind.value} ruleset")
    override = root / "orgs" / org / kind.value / "override.yaml" if org else None
    return Source(
        kind=kind,
        org=org or "default",
        default_text=default.read_text(),
        override_text=override.read_text() if override and override.exists() else None,
        default_label=str(default),
        override_label=str(override) if override else "override.yaml",
    )


def content_hash(ruleset: language.Ruleset) -> str:
    """SHA-256 of what decides: outcomes, default, params and every rule, conditions compiled."""
    body = {
        "kind": ruleset.kind.value,
        "outcomes": ruleset.outcomes,
        "default": ruleset.default,
        "params": ruleset.params,
        "rules": [
            _hashed(asdict(rule)) | {"when": compiler.compile_condition(rule.when)}
            for rule in ruleset.rules
        ],
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hashed(rule: dict[str, Any]) -> dict[str, Any]:
    # A label is content (decisions carry it), but a version published before labels has
    # none: it must hash as it did when published, or its replicas would refuse it.
    return {k: v for k, v in rule.items() if k != "label" or v is not None}


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


MAX_FILLED_REASON = 1000


def _capped(reason: str) -> str:
    # A fact's values (a long list of tags) must not make a decision too big to store.
    return reason if len(reason) <= MAX_FILLED_REASON else reason[: MAX_FILLED_REASON - 1] + "…"


class Loaded:
    """One version of one organisation's ruleset, live in an engine."""

    def __init__(self, engine: Engine, ruleset: language.Ruleset, org: str) -> None:
        self.engine = engine
        self.ruleset = ruleset
        self.ref = RulesetRef(
            org=org, kind=ruleset.kind, version=ruleset.version, content_hash=content_hash(ruleset)
        )
        self.rules = {rule.id: rule for rule in ruleset.rules}
        # Set when it failed while deciding and was taken out of service (live.withdraw).
        self.withdrawn = False
        # The fact fields each reason mentions, so only those are turned into text.
        self._reason_fields = {
            rule.id: [name for _, name, _, _ in string.Formatter().parse(rule.reason) if name]
            for rule in ruleset.rules
        }
        self._recent: dict[tuple[str, tuple[str, ...]], FiredRule] = {}
        self._rank = {outcome: rank for rank, outcome in enumerate(ruleset.outcomes)}
        self._static = {
            rule.id: FiredRule(
                rule=rule.id,
                outcome=rule.outcome,
                reason=rule.reason,
                effect=rule.effect,
                label=rule.label,
            )
            for rule in ruleset.rules
            if not self._reason_fields[rule.id]
        }
        self.flags = set().union(*(compiler.derived_flags(r.when) for r in ruleset.rules))
        self.name = f"{org}.{ruleset.kind.value}@{ruleset.version}#{next(_names)}"
        engine.register(
            self.name, {r.id: compiler.compile_condition(r.when) for r in ruleset.rules}
        )

    def fired_ids(self, facts: dict[str, Any]) -> list[str]:
        return self.engine.evaluate(self.name, facts, compiler.flags_of(facts, self.flags))

    def decide(self, facts: dict[str, Any]) -> tuple[str, list[FiredRule]]:
        """The outcome (the first of the ruleset's outcomes any fired rule gave, else its
        default) and the fired rules, in the order the file lists them, reasons filled in."""
        fired_ids = set(self.fired_ids(facts))
        fired = [self._fired(rule, facts) for rule in self.ruleset.rules if rule.id in fired_ids]
        if not fired:
            return self.ruleset.default, fired
        return min((f.outcome for f in fired), key=self._rank.__getitem__), fired

    def _fired(self, rule: language.Rule, facts: dict[str, Any]) -> FiredRule:
        fields = self._reason_fields[rule.id]
        if not fields:  # the same every time, and immutable: built once
            return self._static[rule.id]
        texts = tuple(_text(facts[name]) for name in fields)
        key = (rule.id, texts)
        fired = self._recent.get(key)
        if fired is None:
            if len(self._recent) >= RECENT_REASONS:
                self._recent.clear()
            # Built from checked parts: no need to validate them again on this hot path.
            fired = FiredRule.model_construct(
                rule=rule.id,
                outcome=rule.outcome,
                reason=_capped(rule.reason.format_map(dict(zip(fields, texts, strict=True)))),
                effect=rule.effect,
                label=rule.label,
            )
            self._recent[key] = fired
        return fired

    def unload(self) -> None:
        self.engine.retire(self.name)


# The ops loop: check and test a whole folder ---------------------------------


@dataclass(frozen=True)
class Target:
    """One ruleset to check and test: a default, or an organisation's override of it."""

    kind: Kind
    org: str | None
    source: Source
    cases: list[Case]


def _expect_files(folder: Path, allowed: set[str]) -> None:
    for path in sorted(folder.iterdir()):
        if path.name not in allowed:
            raise RulesFileError(
                path,
                None,
                f"unexpected file; a {folder.name} folder holds {', '.join(sorted(allowed))}",
            )


def targets(root: Path) -> list[Target]:
    """Every ruleset under ``root``, each with its cases; strict about what lies where."""
    found = _default_targets(root)
    default_cases = {target.kind: target.cases for target in found}
    orgs = root / "orgs"
    for org_folder in sorted(orgs.iterdir()) if orgs.is_dir() else []:
        for folder in sorted(org_folder.iterdir()):
            found.append(_org_target(root, org_folder.name, folder, default_cases))
    return found


def _default_targets(root: Path) -> list[Target]:
    found: list[Target] = []
    for kind in Kind:
        folder = root / "default" / kind.value
        if not folder.is_dir():
            continue
        _expect_files(folder, {"ruleset.yaml", "cases.yaml"})
        cases = _cases_in(folder, kind)
        found.append(Target(kind, None, read_source(root, kind), cases))
    return found


def _org_target(
    root: Path, org: str, folder: Path, default_cases: dict[Kind, list[Case]]
) -> Target:
    """An organisation's override of one kind: its own cases, and the default's it does not
    replace (a case of the same name replaces the default's)."""
    try:
        kind = Kind(folder.name)
    except ValueError:
        raise RulesFileError(
            folder, None, f"not a kind of ruleset: {', '.join(k.value for k in Kind)}"
        ) from None
    _expect_files(folder, {"override.yaml", "cases.yaml"})
    own = _cases_in(folder, kind)
    names = {c.name for c in own}
    cases = [c for c in default_cases.get(kind, []) if c.name not in names] + own
    return Target(kind, org, read_source(root, kind, org), cases)


def _cases_in(folder: Path, kind: Kind) -> list[Case]:
    return read_cases(folder / "cases.yaml", kind) if (folder / "cases.yaml").exists() else []


@dataclass(frozen=True)
class CaseResult:
    target: str
    case: str
    ok: bool
    detail: str


def run_cases(engine: Engine, target: Target) -> list[CaseResult]:
    """Run every case through durable_rules and the reference evaluator; both must agree."""
    label = f"{target.org or 'default'}/{target.kind.value}"
    if not target.cases:
        return [CaseResult(label, "(none)", False, "a ruleset without cases fails: add cases.yaml")]
    loaded = Loaded(engine, target.source.resolve(), target.org or "default")
    try:
        results = [_run_case(loaded, case, label) for case in target.cases]
        results.append(_at_the_extremes(loaded, label))
    finally:
        loaded.unload()
    return results


def _run_case(loaded: Loaded, case: Case, label: str) -> CaseResult:
    outcome, fired = loaded.decide(case.facts)
    fired_ids = tuple(sorted(f.rule for f in fired))
    oracle = tuple(sorted(reference.fired(loaded.ruleset, case.facts)))
    problems = []
    if outcome != case.outcome:
        problems.append(f"outcome {outcome}, expected {case.outcome}")
    if case.fired is not None and fired_ids != case.fired:
        problems.append(f"fired {list(fired_ids)}, expected {list(case.fired)}")
    if oracle != fired_ids:
        problems.append(
            f"engine fired {list(fired_ids)} but the reference evaluator {list(oracle)}"
        )
    return CaseResult(label, case.name, not problems, "; ".join(problems) or outcome)


def extreme_facts(specs: dict[str, FieldSpec]) -> dict[str, Any]:
    """A fact with every field as large as it comes: long texts, long lists, huge numbers."""
    return {name: _extreme(spec) for name, spec in specs.items()}


def _extreme(spec: FieldSpec) -> Any:
    match spec.type:
        case "bool":
            return True
        case "integer":
            return 2**53
        case "number":
            return 1e300
        case "text":
            return spec.choices[-1] if spec.choices else "x" * 10_000
        case "tags":
            return [f"tag-{n:03d}-{'x' * 56}" for n in range(400)]
    assert spec.item_fields is not None  # objects
    return [extreme_facts(spec.item_fields)] * 50


def _at_the_extremes(loaded: Loaded, label: str) -> CaseResult:
    """Decide once on the largest facts there can be: what would fail at run time fails
    here, and every reason, filled in, stays within its size."""
    facts = extreme_facts(field_specs(FACTS[loaded.ruleset.kind]))
    name = "(every fact field at its extreme)"
    try:
        outcome, fired = loaded.decide(facts)
    except Exception as error:
        return CaseResult(label, name, False, f"fails at run time: {type(error).__name__}: {error}")
    too_long = [f.rule for f in fired if len(f.reason) > MAX_FILLED_REASON]
    if too_long:
        return CaseResult(label, name, False, f"reasons too long: {too_long}")
    return CaseResult(label, name, True, outcome)
