"""Plain words for every code a page shows: each domain's every value has its label, so a new
code without one fails here, not on a coordinator's page."""

from __future__ import annotations

import typing
from typing import Any, get_args

import pytest
from jinja2 import Environment

from contracts.console import Role
from contracts.intake import (
    ClientProfile,
    FamilyOrFriend,
    Interview,
    Method,
    OtherParty,
    PeerSupporter,
    RecordCheck,
    Recovery,
    Reference,
    Stage,
    Strength,
    Supervision,
    Training,
    Weekday,
)
from contracts.lists import CaseState, Found, WaitsOn
from contracts.matching import MatchEnded
from contracts.overview import LiveRuleset, RulesHistory, SupervisionDue
from contracts.records import CaseSchedule, ConsentRecord, MatchStatus, Session, SessionStatus
from contracts.replies import FieldError
from contracts.rules import OUTCOMES, FiredRule, Kind, PartyConsent, RulesetRef
from contracts.scheduling import InitialMeetingProposed, RecordAttendance, SessionCancelled
from services.console.labels import LABELS, plain, plain_filter
from services.console.lists import CaseSort, Eligibility, SupporterSort
from services.matching import domain as matching


def values(annotation: Any) -> set[str]:
    """Every value of a Literal (inside Optional too) or a StrEnum."""
    if isinstance(annotation, type):
        return {str(member.value) for member in annotation}  # type: ignore[attr-defined]
    found: set[str] = set()
    for arg in get_args(annotation):
        if isinstance(arg, str):
            found.add(arg)
        elif arg is not type(None):
            found |= values(arg)
    return found


def field(model: type[Any], name: str) -> set[str]:
    return values(model.model_fields[name].annotation)


DOMAINS: dict[str, set[str]] = {
    "stage": values(Stage),
    "match_status": values(MatchStatus),
    "schedule_status": field(CaseSchedule, "status"),
    "session_kind": field(Session, "kind") | field(SupervisionDue, "kind"),
    "session_status": values(SessionStatus),
    "outcome": field(RecordAttendance, "outcome"),
    "method": values(Method),
    "consent_status": field(ConsentRecord, "status")
    | field(PartyConsent, "status")
    | OUTCOMES[Kind.CONSENT],
    # What matching sets ``Waiting.constraint`` to: its fixed names, or "matching-policy".
    "constraint": set(matching.SAID) | {matching.POLICY},
    "role": values(Role),
    "evidence_kind": set().union(
        *(
            field(m, "kind")
            for m in (RecordCheck, Interview, Reference, Recovery, Training, Supervision)
        )
    ),
    "party_role": field(OtherParty, "role"),
    "party_kind": field(OtherParty, "kind"),
    "proposed_by": field(InitialMeetingProposed, "proposed_by"),
    "weekday": values(Weekday),
    "rules_kind": values(Kind),
    "rules_outcome": set().union(*OUTCOMES.values()),
    "reason": field(SessionCancelled, "reason") | field(MatchEnded, "reason"),
    "support_person_kind": field(PeerSupporter, "kind") | field(FamilyOrFriend, "kind"),
    "strength": values(Strength),
    "age_preference": field(ClientProfile, "age_preference"),
    "case_state": set(get_args(CaseState)),
    "waits_on": set(get_args(WaitsOn)),
    "case_sort": set(get_args(CaseSort)),
    "supporter_sort": set(get_args(SupporterSort)),
    "eligibility": set(get_args(Eligibility)),
    "matched_on": field(Found, "matched_on"),
}


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_every_code_of_each_domain_has_a_label(domain: str) -> None:
    assert DOMAINS[domain], f"no values found for {domain}"
    missing = DOMAINS[domain] - set(LABELS.get(domain, {}))
    assert missing == set(), f"{domain} codes without plain words: {sorted(missing)}"


def test_labels_are_words_not_codes() -> None:
    for domain, labels in LABELS.items():
        for code, label in labels.items():
            assert label[:1].isupper(), (domain, code)
            assert "_" not in label, (domain, code)


def test_a_code_with_no_label_is_words_never_the_code() -> None:
    assert plain(Stage.EARLY_RESOLUTION, "stage") == "Early resolution"
    assert plain("initial_meeting", "session_kind") == "Initial meeting"
    assert plain("brand_new_code", "stage") == "brand new code"
    assert plain(None, "stage") == ""
    assert plain("client", "party") == "The client"
    assert plain("landlord-co_1", "party") == "landlord-co_1"  # an id is never reworded


def test_a_rule_is_named_by_its_label_from_the_decision_or_the_live_rulesets() -> None:
    fired = FiredRule(rule="caseload-full", outcome="ineligible", reason="r", label="No room")
    assert plain(fired, "rule") == "No room"
    unlabelled = FiredRule(rule="caseload-full", outcome="ineligible", reason="r")
    assert plain(unlabelled, "rule") == "Caseload full"
    ref = RulesetRef(org="o", kind=Kind.ELIGIBILITY, version="1.0.1", content_hash="0" * 64)
    live = LiveRuleset(
        ruleset=ref, revision=1, published_at="2026-12-01T00:00:00Z", labels={"suspended": "Paused"}
    )
    labels = RulesHistory(org="harbour", live=[live], history=[live]).labels
    assert labels == {"eligibility.suspended": "Paused"}
    assert plain("eligibility.suspended", "rule", labels) == "Paused"
    refusal = FieldError(field="rules.eligibility.suspended", reason="The supporter is suspended.")
    assert plain(refusal, "field", labels) == "Paused"
    assert plain(refusal.model_copy(update={"label": "Said"}), "field", labels) == "Said"


def test_a_field_is_named_by_its_forms_label_else_by_words() -> None:
    env = Environment(autoescape=True)
    env.filters["plain"] = plain_filter

    class Input(typing.NamedTuple):
        name: str
        label: str

    class Form(typing.NamedTuple):
        inputs: list[Input]

    template = env.from_string("{% for e in errors %}{{ e|plain('field') }};{% endfor %}")
    errors = [
        FieldError(field="client.contact", reason="r"),
        FieldError(field="client.languages.0", reason="r"),
        FieldError(field="data.case_id", reason="r"),
    ]
    form = Form([Input("client.contact.email", "Email"), Input("client.languages", "Languages")])
    assert template.render(errors=errors, form=form) == "Email;Languages;Case id;"
    assert template.render(errors=errors) == "Contact;Languages;Case id;"
