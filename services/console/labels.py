"""Plain words for every code a page would otherwise show: a stage, a status, a session's
kind, a way to meet, a rule, a field. Pages use the ``plain`` filter
(``{{ case.stage|plain("stage") }}``); a code with no label here is shown as words made from
the code itself (``initial_meeting``: "initial meeting"), never as the code.

A rule's words are not here: ops write them beside the rule (``label:`` in the rules
files), and they reach pages with the decision that fired it (``FiredRule.label``, a
refusal's ``FieldError.label``) or from the live rulesets (``RulesHistory.labels``, passed
to a page as ``rule_labels``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

LABELS: dict[str, dict[str, str]] = {
    "stage": {
        "entry": "Entry",
        "early_resolution": "Early resolution",
        "investigation": "Investigation",
        "conciliation": "Conciliation",
        "adjudication": "Adjudication",
        "closed": "Closed",
    },
    "match_status": {
        "awaiting_batch": "Waiting for the rest of its import",
        "proposed": "Supporters proposed",
        "waitlisted": "Waiting for a supporter",
        "expired": "Proposals expired",
        "accepted": "Supporter chosen, waiting for consent",
        "active": "Active",
        "paused": "Paused for review",
        "completed": "Completed",
        "refused": "Service refused",
        "erased": "Erased",
    },
    "schedule_status": {
        "arranging": "Arranging the first meeting",
        "going_ahead": "Going ahead",
        "suspended": "Suspended",
        "ended": "Ended",
    },
    "session_kind": {
        "initial_meeting": "Initial meeting",
        "regular": "Regular session",
        "extra": "Extra session",
        "supervision": "Supervision",
        "team_debrief": "Team debrief",
    },
    "session_status": {
        "proposed": "Proposed",
        "booked": "Booked",
        "completed": "Held",
        "client_no_show": "Client did not come",
        "supporter_no_show": "Supporter did not come",
        "cancelled": "Cancelled",
    },
    "outcome": {
        "completed": "Held",
        "client_no_show": "Client did not come",
        "supporter_no_show": "Supporter did not come",
    },
    # Why sessions were cancelled or a schedule suspended, and why a match ended.
    "reason": {
        "cancelled_by_client": "Cancelled by the client",
        "cancelled_by_supporter": "Cancelled by the supporter",
        "consent_not_active": "Consent is not active",
        "supporter_changed": "The client changed supporter",
        "supporter_ineligible": "The supporter is not eligible",
        "service_refused": "The client refused the service",
        "client_erased": "The client was erased",
        "change_of_supporter": "The client asked for another supporter",
        "supporter_declined": "The supporter could not take the client on",
        "service_completed": "The funded service was completed",
    },
    "method": {
        "in_person": "In person, at a safe venue",
        "home_visit": "Home visit",
        "phone": "Phone",
        "text": "Text messages",
        "video": "Video call",
    },
    "consent_status": {
        "given": "Given",
        "withdrawn": "Withdrawn",
        "missing": "Not given yet",
        "active": "Everyone has consented",
        "pending": "Waiting for consent",
        "suspended": "Suspended: consent withdrawn",
    },
    # What left a waitlisted client with no supporter (matching's constraints).
    "constraint": {
        "eligible-with-free-slot": "No eligible supporter with a free slot",
        "no-conflict": "Every supporter is connected to another party",
        "not-declined": "Only supporters the client declined or left",
        "matching-policy": "No supporter fits what the client must have",
    },
    "role": {
        "coordinator": "Coordinator",
        "supervisor": "Supervisor",
        "operator": "Operator",
    },
    "evidence_kind": {
        "record_check": "Record check",
        "interview": "Interview",
        "reference": "Reference",
        "recovery": "Recovery",
        "training": "Training",
        "supervision": "Supervision",
    },
    "party_role": {
        "respondent": "Respondent",
        "co_complainant": "Co-complainant",
        "other": "Other party",
    },
    "party_kind": {"organisation": "Organisation", "person": "Person"},
    "proposed_by": {
        "scheduling": "Alongside, from both calendars",
        "client": "The client",
        "supporter": "The supporter",
    },
    "party": {"client": "The client"},
    "support_person_kind": {"peer": "Peer supporter", "family": "Family", "friend": "Friend"},
    "strength": {"must": "Must have", "prefer": "Would prefer", "none": "No preference"},
    "age_preference": {
        "younger": "Younger",
        "similar": "Of a similar age",
        "older": "Older",
        "any": "Any age",
    },
    "weekday": {
        "mon": "Monday",
        "tue": "Tuesday",
        "wed": "Wednesday",
        "thu": "Thursday",
        "fri": "Friday",
        "sat": "Saturday",
        "sun": "Sunday",
    },
    "rules_kind": {
        "eligibility": "Eligibility",
        "matching_policy": "Matching policy",
        "consent": "Consent",
        "boundaries": "Boundaries",
    },
    "rules_outcome": {
        "eligible": "Eligible",
        "ineligible": "Not eligible",
        "policy": "Matching policy",
        "active": "Active",
        "pending": "Pending",
        "suspended": "Suspended",
        "allowed": "Allowed",
        "refused": "Refused",
    },
    # The console's lists (``contracts.lists``).
    "case_state": {
        "matching": "Being matched",
        "waiting": "Waiting for a supporter",
        "proposed": "Supporters proposed",
        "chosen": "Supporter chosen",
        "active": "Active",
        "paused": "Paused for review",
        "ended": "Ended",
        "erased": "Erased",
    },
    "waits_on": {
        "supporter": "A supporter to be free",
        "choice": "The client's choice",
        "consent": "Consent",
        "meeting": "The first meeting",
        "review": "Your review",
    },
    "case_sort": {
        "opened": "Oldest opened first",
        "-opened": "Newest opened first",
        "since": "Longest in its state first",
        "-since": "Newest in its state first",
    },
    "supporter_sort": {
        "registered": "First registered first",
        "lapses": "Vetting lapsing first",
        "room": "Most places free first",
    },
    "eligibility": {
        "eligible": "Eligible",
        "ineligible": "Not eligible",
        "undecided": "Not decided yet",
    },
    "yes_no": {"true": "Yes", "false": "No"},
    # What a search matched (``contracts.lists.Found``), and which of a client's wishes a
    # proposed supporter meets (the matching policy's fields, as a person's page says them).
    "matched_on": {
        "reference": "Reference",
        "name": "Name",
        "email": "Email",
        "phone": "Phone",
        "languages": "Speaks your language",
        "methods": "Can meet the way you asked",
        "lived_experience": "Has been through something like what you are going through",
        "cultural_background": "Shares the cultural background you asked for",
        "gender_identity": "Is the gender you asked for",
        "region": "Lives in your region",
        "youth_cleared": "Cleared to support young people",
    },
}


# Domains of ids, of which only a few have words ("client"): any other is shown as it is.
_IDS = {"party"}


def words(code: str) -> str:
    """Words made from a code, for one with no label: ``caseload-full``: "Caseload full"."""
    return code.replace("_", " ").replace("-", " ").strip().capitalize()


def plain(code: object, domain: str, labels: Mapping[str, str] | None = None) -> str:
    """``code`` in plain words, as the ``domain`` (``stage``, ``session_kind``...) names it.

    ``rule``: a fired rule (its ``label``), or ``<kind>.<rule>`` looked up in ``labels``
    (``RulesHistory.labels``). ``field``: a refusal's field (a ``FieldError``, by its
    ``label`` when it has one), or its dotted path: a rule by its label, else the path's
    last name in words (``client.contact.email``: "Email")."""
    if code is None:
        return ""
    label = getattr(code, "label", None)
    if domain in ("rule", "field") and label:
        return str(label)
    if domain in ("rule", "field"):  # a fired rule (``rule``) or a refusal (``field``)
        code = getattr(code, domain, code)
    text = str(getattr(code, "value", code))
    if domain == "rule":
        return (labels or {}).get(text) or words(text.rpartition(".")[2])
    if domain == "field":
        return field_words(text, labels)
    if domain in _IDS:
        return LABELS[domain].get(text, text)
    return LABELS.get(domain, {}).get(text) or text.replace("_", " ").replace("-", " ")


def field_words(field: str, labels: Mapping[str, str] | None = None) -> str:
    """A refusal's field in words: ``rules.<kind>.<rule>`` by the rule's label; a path by the
    last of its names (list positions skipped)."""
    if field.startswith("rules."):
        rule = field.removeprefix("rules.")
        return (labels or {}).get(rule) or words(rule.rpartition(".")[2])
    names = [part for part in field.removeprefix("data.").split(".") if not part.isdigit()]
    return words(names[-1]) if names else "The request"


def input_label(field: str, inputs: Iterable[Any]) -> str | None:
    """The label of the form's input a refusal names, or of the first input inside the part
    it names (as ``forms.errors_by_input`` places it); None if no input is there."""
    for i in inputs:
        if i.name == field or i.name.startswith(f"{field}."):
            return str(i.label)
    return None


@pass_context
def plain_filter(context: Context, code: object, domain: str) -> str:
    """``plain`` for templates: a rule or a field is looked up in the page's ``rule_labels``
    (the live rulesets'), and a field on a form page by its input's label."""
    labels = context.get("rule_labels")
    if domain == "field":
        form = context.get("form")
        field = getattr(code, "field", code)
        if form is not None and isinstance(field, str) and not getattr(code, "label", None):
            found = input_label(field, form.inputs)
            if found is not None:
                return found
    return plain(code, domain, labels if isinstance(labels, Mapping) else None)
