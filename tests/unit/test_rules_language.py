"""The rules language: strict checks that name file and line, overrides, and the shipped rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from contracts.rules import Kind
from runtime.settings import Settings
from services.rules import bundle, language, reference
from services.rules.engine import Engine
from services.rules.located import RulesFileError

ROOT = bundle.DEFAULT_ROOT


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the shipped rules folder to break."""
    shutil.copytree(ROOT, tmp_path / "rules")
    return tmp_path / "rules"


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def check(root: Path) -> None:
    for target in bundle.targets(root):
        target.source.resolve()


def line_of(path: Path, needle: str) -> int:
    """The last line holding ``needle``."""
    return max(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_every_shipped_ruleset_passes_its_cases_on_both_evaluators() -> None:
    engine = Engine()
    results = [r for target in bundle.targets(ROOT) for r in bundle.run_cases(engine, target)]
    assert len(results) >= 30
    assert [r for r in results if not r.ok] == []
    assert engine.registered == []  # every test version was deleted after use


# (what to change, into what, the error's words, text on the line the error must name)
BROKEN = [
    (
        "    outcome: ineligible\n    reason: No police",
        "    outcome: ineligible\n    reson: x\n    reason: No police",
        "unknown key 'reson'",
        "reson: x",
    ),
    (
        "{record_check_present: {eq: false}}",
        "{record_check_present: {equals: false}}",
        "unknown operator 'equals'",
        "equals: false",
    ),
    (
        "{interview_passed: {eq: false}}",
        "{interview_passed: {lt: false}}",
        "operator not valid for bool",
        "{lt: false}",
    ),
    (
        "{caseload_room: {lte: 0}}",
        '{caseload_room: {lte: "0"}}',
        "caseload_room is a number; '0' is not",
        'lte: "0"',
    ),
    ("{suspended: {eq: true}}", "{suspnded: {eq: true}}", "unknown field 'suspnded'", "suspnded"),
    (
        "{param: min_recovery_days}",
        "{param: min_recovery}",
        "unknown param 'min_recovery'",
        "min_recovery}",
    ),
    (
        "    outcome: ineligible\n    reason: The supporter is suspended.",
        "    outcome: maybe\n    reason: The supporter is suspended.",
        "outcome must be one of",
        "outcome: maybe",
    ),
    (
        "  - id: suspended\n",
        "  - id: caseload-full\n",
        "rule id 'caseload-full' is used twice",
        "- id: caseload-full",
    ),
    ('version: "1.0.1"', "version: 1.0", "version is MAJOR.MINOR.PATCH", "version: 1.0"),
    # Coordinators read a rule's label wherever the rule is named: every rule has one.
    (
        "  - id: suspended\n    label: Suspended\n",
        "  - id: suspended\n",
        "rule 'suspended' is missing 'label'",
        "- id: suspended",
    ),
    ("label: Suspended", "label: ''", "expected non-empty text", "label: ''"),
    (
        "label: Suspended",
        "label: Suspended {days_since_supervision} days",
        "no {field} placeholders",
        "label: Suspended {",
    ),
    ("label: Suspended", "label: " + "x" * 61, "at most 60 characters", "x" * 61),
    (
        "outcomes: [ineligible, eligible]",
        "outcomes: [ineligible, eligible, maybe]",
        "eligibility outcomes are eligible, ineligible",
        "outcomes:",
    ),
    (
        "reason: The supporter is suspended.",
        "reason: The supporter is {suspension}.",
        "placeholders",
        "{suspension}",
    ),
    # A format width once passed check, test and publish, then made decisions too big to store.
    (
        "reason: The supporter is suspended.",
        "reason: Suspended {days_since_supervision:>1100000}.",
        "not {days_since_supervision:>1100000}",
        "1100000",
    ),
    (
        "reason: The supporter is suspended.",
        "reason: Suspended {suspended!r}.",
        "not {suspended!r}",
        "{suspended!r}",
    ),
    (
        "reason: The supporter is suspended.",
        "reason: " + "x" * 301,
        "at most 300 characters",
        "x" * 301,
    ),
]


@pytest.mark.parametrize(("old", "new", "message", "on_line"), BROKEN)
def test_strict_check_names_file_line_and_reason(
    tree: Path, old: str, new: str, message: str, on_line: str
) -> None:
    path = tree / "default" / "eligibility" / "ruleset.yaml"
    replace(path, old, new)
    with pytest.raises(RulesFileError) as info:
        check(tree)
    assert message in info.value.message
    assert info.value.path == str(path)
    assert info.value.line == line_of(path, on_line)


def test_a_rule_an_override_adds_needs_a_label_and_one_it_changes_keeps_its_own(
    tree: Path,
) -> None:
    override = tree / "orgs" / "harbour-ombudsman" / "eligibility" / "override.yaml"
    added = (
        "rules:\n  - id: suspended\n    reason: Suspended by the scheme.\n"
        "  - id: needs-two-references\n    description: Two professional references.\n"
        "    when: {professional_references: {lt: 2}}\n    outcome: ineligible\n"
        "    reason: Two are needed.\n"
    )
    override.write_text(override.read_text() + added)
    with pytest.raises(RulesFileError) as info:
        check(tree)
    assert "rule 'needs-two-references' is missing 'label'" in info.value.message
    assert info.value.path == str(override)
    assert info.value.line == line_of(override, "- id: needs-two-references")
    replace(
        override,
        "  - id: needs-two-references\n",
        "  - id: needs-two-references\n    label: Two references\n",
    )
    rules = {
        r.id: r
        for r in bundle.read_source(tree, Kind.ELIGIBILITY, "harbour-ombudsman").resolve().rules
    }
    assert rules["needs-two-references"].label == "Two references"
    assert rules["suspended"].label == "Suspended"  # changed in its reason only


def test_every_shipped_rule_has_a_label() -> None:
    for target in bundle.targets(ROOT):
        for rule in target.source.resolve().rules:
            assert (rule.label or "")[:1].isupper(), (target.kind, target.org, rule.id)


def test_a_version_published_before_labels_still_loads_with_its_hash() -> None:
    """Replicas compile what is live from its texts: one published before labels were
    required still runs, and hashes as it did then (labels are in the hash only when set)."""
    text = bundle.read_source(ROOT, Kind.ELIGIBILITY).default_text
    unlabelled = "\n".join(line for line in text.splitlines() if not line.startswith("    label:"))
    with pytest.raises(RulesFileError, match="missing 'label'"):
        language.build(language.read_ruleset_text("old.yaml", unlabelled))
    old = language.build(language.read_ruleset_text("old.yaml", unlabelled), strict=False)
    assert {rule.label for rule in old.rules} == {None}
    new = language.build(language.read_ruleset_text("new.yaml", text))
    assert bundle.content_hash(old) != bundle.content_hash(new)  # a label is content
    relabelled = text.replace("label: Suspended", "label: Suspended by the scheme")
    assert bundle.content_hash(
        language.build(language.read_ruleset_text("r.yaml", relabelled))
    ) != bundle.content_hash(new)


def test_a_decision_names_each_fired_rule_with_its_label() -> None:
    engine = Engine()
    source = bundle.read_source(ROOT, Kind.ELIGIBILITY)
    loaded = bundle.Loaded(engine, source.resolve(), "test")
    try:
        facts = {
            "supporter_id": "s1",
            "record_check_present": True,
            "record_check_clear": True,
            "record_check_days_left": -3,
            "interview_passed": True,
            "professional_references": 1,
            "personal_references": 1,
            "recovery_days": 4000,
            "training_courses": ["peer_support_foundations"],
            "days_since_supervision": 90,
            "caseload_room": 2,
            "suspended": False,
        }
        outcome, fired = loaded.decide(facts)
    finally:
        loaded.unload()
    assert outcome == "ineligible"
    assert [(f.rule, f.label) for f in fired] == [
        ("record-check-expired", "Record check expired"),
        ("supervision-overdue", "Supervision overdue"),
    ]
    assert "90 days" in fired[1].reason


def test_a_wrong_value_in_a_case_is_an_error_with_its_line(tree: Path) -> None:
    path = tree / "default" / "consent" / "cases.yaml"
    replace(path, "status: withdrawn", "status: withdrew")
    with pytest.raises(RulesFileError) as info:
        check(tree)
    assert "facts do not fit consent" in info.value.message
    assert info.value.path == str(path)


def test_a_stray_file_is_an_error(tree: Path) -> None:
    (tree / "default" / "eligibility" / "rulset.yaml").write_text("ruleset: eligibility\n")
    with pytest.raises(RulesFileError, match="unexpected file"):
        check(tree)


def test_a_ruleset_without_cases_fails_its_tests(tree: Path) -> None:
    (tree / "default" / "boundaries" / "cases.yaml").unlink()
    target = next(t for t in bundle.targets(tree) if t.kind.value == "boundaries" and t.org is None)
    [result] = bundle.run_cases(Engine(), target)
    assert not result.ok
    assert "without cases fails" in result.detail


def test_a_case_that_no_longer_holds_fails_with_both_answers(tree: Path) -> None:
    replace(
        tree / "default" / "boundaries" / "ruleset.yaml",
        "min_duration_minutes: 60",
        "min_duration_minutes: 90",
    )
    target = next(t for t in bundle.targets(tree) if t.kind.value == "boundaries" and t.org is None)
    failed = [r for r in bundle.run_cases(Engine(), target) if not r.ok]
    assert failed
    assert "outcome refused, expected allowed" in failed[0].detail


def test_override_changes_params_disables_changes_and_adds_rules(tree: Path) -> None:
    override = tree / "orgs" / "harbour-ombudsman" / "eligibility" / "override.yaml"
    override.write_text(
        'ruleset: eligibility\nversion: "2.0.0-h"\n'
        "params: {min_recovery_days: 730}\n"
        "disable: [caseload-full]\n"
        "rules:\n"
        "  - id: suspended\n    reason: Suspended by the scheme.\n"
        "  - id: needs-two-references\n    label: Two references\n    description: Two professional references.\n"
        "    when: {professional_references: {lt: 2}}\n    outcome: ineligible\n    reason: Two are needed.\n"
    )
    ruleset = bundle.read_source(tree, Kind.ELIGIBILITY, "harbour-ombudsman").resolve()
    rules = {r.id: r for r in ruleset.rules}
    assert ruleset.version == "2.0.0-h"
    assert ruleset.params["min_recovery_days"] == 730
    assert "caseload-full" not in rules
    assert rules["suspended"].reason == "Suspended by the scheme."
    assert (
        rules["suspended"].description == "The supporter is not suspended."
    )  # kept from the default
    assert rules["needs-two-references"].outcome == "ineligible"


def test_override_errors_name_the_override(tree: Path) -> None:
    override = tree / "orgs" / "harbour-ombudsman" / "eligibility" / "override.yaml"
    replace(override, "disable: [caseload-full]", "disable: [caseload-ful]")
    with pytest.raises(RulesFileError) as info:
        check(tree)
    assert info.value.path == str(override)
    assert "no rule 'caseload-ful' to disable" in info.value.message
    assert info.value.line == line_of(override, "disable:")


def test_a_list_of_more_values_than_the_engine_takes_is_an_error_on_its_line(tree: Path) -> None:
    # 800 values passed the check and hung the shared engine on publish, for every org.
    path = tree / "default" / "eligibility" / "ruleset.yaml"
    values = ", ".join(f"v{i}" for i in range(101))
    replace(path, "{suspended: {eq: true}}", "{training_courses: {contains_any: [" + values + "]}}")
    with pytest.raises(RulesFileError) as info:
        check(tree)
    assert "contains_any takes at most 100 values, not 101" in info.value.message
    assert info.value.line == line_of(path, "v100")


def test_lists_within_their_limit_that_together_would_hang_the_engine_are_an_error(
    tree: Path,
) -> None:
    # Six rules of 100 values each on one field passed every check, and durable_rules
    # never finished compiling them (it hangs from 512 comparisons of one field).
    override = tree / "orgs" / "harbour-ombudsman" / "eligibility" / "override.yaml"

    def rules(count: int) -> str:
        return "".join(
            f"  - id: band-{n}\n    label: l\n    description: d\n    outcome: ineligible\n    reason: r\n"
            f"    when: {{recovery_days: {{in: [{', '.join(str(n * 1000 + v) for v in range(100))}]}}}}\n"
            for n in range(count)
        )

    override.write_text('ruleset: eligibility\nversion: "2.0.0-h"\nrules:\n' + rules(4))
    loaded = bundle.Loaded(
        Engine(), bundle.read_source(tree, Kind.ELIGIBILITY, "harbour-ombudsman").resolve(), "t"
    )  # 401 with the default's own recovery rule: compiles
    loaded.unload()
    override.write_text('ruleset: eligibility\nversion: "2.0.0-h"\nrules:\n' + rules(6))
    with pytest.raises(RulesFileError) as info:
        bundle.read_source(tree, Kind.ELIGIBILITY, "harbour-ombudsman").resolve()
    assert info.value.message == (
        "the ruleset compares recovery_days with 501 values by this rule; at most 500 per "
        "field in a ruleset (more hang the rules engine)"
    )
    assert info.value.line == line_of(override, "id: band-4")


def test_an_override_cannot_grow_a_ruleset_past_its_limit(tree: Path) -> None:
    override = tree / "orgs" / "harbour-ombudsman" / "eligibility" / "override.yaml"
    added = "".join(
        f"  - id: extra-{n}\n    label: l\n    description: d\n    when: {{suspended: {{eq: true}}}}\n"
        "    outcome: ineligible\n    reason: r\n"
        for n in range(language.MAX_RULES)
    )
    override.write_text('ruleset: eligibility\nversion: "2.0.0-h"\nrules:\n' + added)
    with pytest.raises(RulesFileError, match="at most 200 rules") as info:
        bundle.read_source(tree, Kind.ELIGIBILITY, "harbour-ombudsman").resolve()
    assert info.value.path.endswith("override.yaml")


def test_a_filled_in_reason_is_capped_whatever_the_facts() -> None:
    loaded = bundle.Loaded(Engine(), bundle.read_source(ROOT, Kind.BOUNDARIES).resolve(), "t")
    facts = {
        "case_id": "c1",
        "sessions_per_week": 1.0,
        "both_agreed_more_often": False,
        "duration_minutes": 60,
        "method": "phone",
        "method_agreed": True,
        "safety_concerns": [],
        "days_past_service_end": -5,
        "consent_active": True,
        "purposes": ["legal_advice", *(f"purpose_{n:02d}_{'x' * 40}" for n in range(40))],
    }
    try:
        outcome, fired = loaded.decide(facts)
    finally:
        loaded.unload()
    assert outcome == "refused"
    [reason] = [f.reason for f in fired]
    assert len(reason) == bundle.MAX_FILLED_REASON
    assert reason.endswith("…")


def test_a_number_the_engine_cannot_read_is_an_error_on_its_line(tree: Path) -> None:
    path = tree / "default" / "boundaries" / "ruleset.yaml"
    replace(path, "{gt: {param: max_sessions_per_week_without_agreement}}", "{lt: 1.0e-7}")
    with pytest.raises(RulesFileError) as info:
        check(tree)
    assert "sessions_per_week: a number in a rule is 0, or between 0.0001 and" in info.value.message
    assert info.value.line == line_of(path, "1.0e-7")


def test_an_organisation_allows_another_session_purpose_by_listing_them_all_again(
    tree: Path,
) -> None:
    default = bundle.read_source(tree, Kind.BOUNDARIES).resolve()
    purposes = [*default.params["peer_support_purposes"], "court_day_companionship"]
    override = tree / "orgs" / "harbour-ombudsman" / "boundaries" / "override.yaml"
    override.parent.mkdir()
    override.write_text(
        'ruleset: boundaries\nversion: "2.0.0-h"\n'
        f"params: {{peer_support_purposes: [{', '.join(purposes)}]}}\n"
    )
    extended = bundle.read_source(tree, Kind.BOUNDARIES, "harbour-ombudsman").resolve()
    session = {
        "sessions_per_week": 1,
        "both_agreed_more_often": False,
        "duration_minutes": 60,
        "method": "phone",
        "method_agreed": True,
        "safety_concerns": [],
        "days_past_service_end": -30,
        "consent_active": True,
    }
    asked = {**session, "purposes": ["listening", "court_day_companionship"]}
    assert reference.fired(default, asked) == ["outside-peer-role"]
    assert reference.fired(extended, asked) == []
    assert reference.fired(extended, {**asked, "purposes": ["draft_my_submission"]}) == [
        "outside-peer-role"
    ]


def test_an_allow_list_is_for_lists_only(tree: Path) -> None:
    path = tree / "default" / "boundaries" / "ruleset.yaml"
    replace(
        path,
        "{duration_minutes: {lt: {param: min_duration_minutes}}}",
        "{duration_minutes: {contains_other_than: [60, 90]}}",
    )
    with pytest.raises(RulesFileError) as info:
        check(tree)
    assert "operator not valid for integer" in info.value.message
    assert "contains_other_than" in info.value.message


def test_the_rules_folder_is_a_setting_read_when_asked_not_on_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALONGSIDE_RULES_DIR", raising=False)
    assert bundle.root_of(Settings()) == bundle.DEFAULT_ROOT  # the shipped rules
    monkeypatch.setenv("ALONGSIDE_RULES_DIR", str(tmp_path))
    assert bundle.root_of(Settings()) == tmp_path  # a deployment's own, read now
    assert tmp_path != bundle.DEFAULT_ROOT  # importing read no variable
