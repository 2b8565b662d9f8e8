"""The pages say codes in plain words: a waitlisted client's constraint, a session's kind and
outcome, a consent's status, a rule by its label, a refused field by its name."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts.console import Problem
from contracts.overview import (
    ConsentMissing,
    LiveRuleset,
    RulesHistory,
    ScheduledSession,
    Today,
    Waiting,
)
from contracts.replies import FieldError
from contracts.rules import FiredRule, Kind, LoggedDecision, RulesDecision, RulesetRef
from contracts.views import DecisionView
from services.console.overview import Overview
from services.console.pages_overview import month_charts
from services.console.pages_shared import templates

LISTS = (
    "waiting",
    "matches_to_review",
    "awaiting_choice",
    "consents_missing",
    "meetings_to_confirm",
    "sessions_this_week",
    "vetting_lapsing",
    "supervision_due",
)
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
REF = RulesetRef(org="harbour", kind=Kind.ELIGIBILITY, version="1.0.1", content_hash="a" * 64)


def page(name: str, **context: Any) -> str:
    base = {"org": "harbour", "zone": ZoneInfo("UTC"), "session": None, "account": None}
    return templates.env.get_template(name).render({**base, **context})


def test_today_says_why_no_one_and_what_kind_in_words() -> None:
    today = Today(
        org="harbour",
        as_of=NOW,
        time_zone="UTC",
        week_starts=date(2026, 11, 30),
        counts=dict.fromkeys(LISTS, 1),
        waiting=[Waiting(case_id="c1", constraint="eligible-with-free-slot", since=NOW)],
        awaiting_choice=[],
        consents_missing=[
            ConsentMissing(
                case_id="c2",
                stage="early_resolution",
                status="pending",
                missing_party_ids=["client", "landlord-1"],
                since=NOW,
            )
        ],
        meetings_to_confirm=[],
        sessions_this_week=[
            ScheduledSession(
                case_id="c3",
                supporter_id="s1",
                session_id="x1",
                kind="initial_meeting",
                start=NOW,
                outcome="client_no_show",
            )
        ],
        vetting_lapsing=[],
        supervision_due=[],
    )
    html = page("today.html", today=today)
    for said in (
        "No eligible supporter with a free slot",
        "Early resolution",
        "Waiting for consent",
        "The client, landlord-1",
        "Initial meeting",
        "Client did not come",
    ):
        assert said in html
    for code in ("eligible-with-free-slot", "early_resolution", "initial_meeting", "no_show"):
        assert code not in html
    # Each list leads to itself whole, a page at a time, and as a spreadsheet.
    assert 'href="/orgs/harbour/cases?state=waiting">The whole list</a>' in html
    assert 'href="/api/orgs/harbour/cases.csv?waits_on=consent" download>' in html
    assert 'href="/api/orgs/harbour/supporters.csv?supervision_overdue=true" download>' in html


def test_the_rules_page_names_kinds_and_rules_in_words() -> None:
    live = LiveRuleset(
        ruleset=REF,
        revision=2,
        published_at=NOW,
        labels={"record-check-expired": "Record check expired"},
    )
    decision = RulesDecision(
        kind=Kind.ELIGIBILITY,
        subject_id="s1",
        outcome="ineligible",
        fired=[
            FiredRule(
                rule="record-check-expired",
                outcome="ineligible",
                reason="The record check has expired.",
            )
        ],
        ruleset=REF,
        decided_at=NOW,
    )
    explained = DecisionView(
        command_id="v1", viewed_at=NOW, logged=LoggedDecision(org="harbour", decision=decision)
    )
    history = RulesHistory(org="harbour", live=[live], history=[live])
    html = page(
        "rules.html",
        rules=history,
        rule_labels=history.labels,
        may_explain=True,
        asked="d1",
        explained=explained,
        refused=None,
    )
    # A decision logged without a label is named by the live ruleset's.
    assert "<td>Record check expired <span" in html
    assert "<strong>Not eligible</strong>" in html
    assert "<td>Eligibility</td>" in html
    assert "matching_policy" not in html


def test_a_refusal_names_the_rule_by_its_label_and_a_field_in_words() -> None:
    problem = Problem(
        title="AcceptProposal refused",
        status=422,
        detail="d",
        errors=[
            FieldError(
                field="rules.eligibility.caseload-full",
                reason="The supporter's caseload is full.",
                label="Caseload full",
            ),
            FieldError(field="supporter_id", reason="required: fill it in"),
        ],
    )
    html = page("problem.html", problem=problem)
    assert "<strong>Caseload full</strong>: The supporter&#39;s caseload is full." in html
    assert "<strong>Supporter id</strong>: required: fill it in" in html
    assert "rules.eligibility" not in html


def test_each_chart_names_its_unit_and_its_figures_are_a_table_too() -> None:
    reports = [
        Overview("harbour").month(month, datetime(2026, 12, 31, tzinfo=UTC))
        for month in ("2026-11", "2026-12")
    ]
    charts = month_charts(reports)
    html = page("reports.html", months=["2026-11", "2026-12"], report=reports[-1], charts=charts)
    assert html.count('<section aria-labelledby="trends">') == 1
    assert "Median time from intake to first proposal (hours)" in html  # its axis's unit
    assert '<th scope="col">Proposals accepted (% of answered)</th>' in html
    assert '<th scope="row">2026-11</th>' in html  # a row a month, for a screen reader
    assert 'aria-hidden="true"' in html  # the drawing itself says nothing the table does not
