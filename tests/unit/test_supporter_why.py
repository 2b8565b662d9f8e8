"""A supporter's page says why they are not eligible: each rule's label for everyone, its
reason (about the person) only for a role that reads sensitive fields."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.rules import FiredRule, Kind, RulesDecision, RulesetRef, unfit_reasons
from contracts.views import SupporterView, WhyIneligible
from services.console import fields
from tests.support import marked_supporter

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def view() -> SupporterView:
    return SupporterView(
        command_id="v1",
        viewed_at=NOW,
        supporter_id="s1",
        profile=marked_supporter("s1").profile,
        suspended=False,
        registered_at=NOW,
        vetting=[],
        eligible=False,
        ineligible_because=[
            WhyIneligible(
                rule="recovery-too-short",
                label="Recovery too short",
                reason="Length of recovery (200 days) is below the minimum.",
            ),
            WhyIneligible(rule="caseload-full", label="Caseload full"),
        ],
    )


def test_a_coordinator_reads_which_rules_but_not_why_in_detail() -> None:
    seen = fields.limited(view(), "coordinator")
    assert [(w.rule, w.label, w.reason) for w in seen.ineligible_because] == [
        ("recovery-too-short", "Recovery too short", None),
        ("caseload-full", "Caseload full", None),
    ]
    assert "ineligible_because.reason" in seen.withheld
    SupporterView.model_validate_json(seen.model_dump_json())  # still its documented schema


def test_a_supervisor_reads_why() -> None:
    assert fields.limited(view(), "supervisor") == view()


def test_nothing_withheld_when_no_rule_gave_a_reason() -> None:
    bare = view().model_copy(
        update={"ineligible_because": [WhyIneligible(rule="suspended", label="Suspended")]}
    )
    assert "ineligible_because.reason" not in fields.limited(bare, "coordinator").withheld


def test_a_refusal_to_bind_an_unfit_supporter_names_each_rule_by_its_label() -> None:
    ref = RulesetRef(org="harbour", kind=Kind.ELIGIBILITY, version="1.0.1", content_hash="a" * 64)
    fired = [
        FiredRule(rule="supervision-overdue", outcome="ineligible", reason="r", label="Overdue"),
        FiredRule(rule="training-missing", outcome="ineligible", reason="t"),  # no label yet
    ]
    decision = RulesDecision(
        kind=Kind.ELIGIBILITY,
        subject_id="s1",
        outcome="ineligible",
        fired=fired,
        ruleset=ref,
        decided_at=NOW,
    )
    assert [(e.field, e.label) for e in unfit_reasons(decision)] == [
        ("rules.eligibility.supervision-overdue", "Overdue"),
        ("rules.eligibility.training-missing", "Training missing"),
    ]
