"""The console's forms: each input named by its path in the command's body
(``client.contact.email``), so a page's field errors are the API's, word for word.

A form is a list of inputs; ``body_of`` turns what the browser sent into the command's JSON
body (dotted names nest, a number after a dot is a list index, empty inputs are left out)
for the command's own model to validate. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from contracts.intake import Method, Stage, Weekday
from contracts.replies import FieldError

Kind = Literal[
    "text",
    "email",
    "tel",
    "number",
    "date",
    "time",
    "textarea",
    "select",
    "checks",
    "list",
    "checkbox",
]


@dataclass(frozen=True)
class Input:
    name: str  # the path in the command's body
    label: str
    kind: Kind = "text"
    options: tuple[str, ...] = ()
    required: bool = False
    hint: str = ""

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-")


@dataclass(frozen=True)
class Fieldset:
    legend: str
    inputs: tuple[Input, ...]


@dataclass(frozen=True)
class Form:
    command_type: str
    title: str
    fieldsets: tuple[Fieldset, ...]

    @property
    def inputs(self) -> list[Input]:
        return [i for fieldset in self.fieldsets for i in fieldset.inputs]


METHODS = tuple(m.value for m in Method)
DAYS = tuple(d.value for d in Weekday)
STAGES = tuple(s.value for s in Stage if s is not Stage.CLOSED)
TAGS = "comma separated, lower case: tenancy_dispute, employment_dispute"


def _availability(prefix: str) -> Fieldset:
    return Fieldset(
        "A time they are usually free (in the organisation's time zone)",
        (
            Input(f"{prefix}.availability.0.day", "Day", "select", DAYS, required=True),
            Input(f"{prefix}.availability.0.start", "From", "time", required=True),
            Input(f"{prefix}.availability.0.end", "To", "time", required=True),
        ),
    )


INTAKE = Form(
    "SubmitIntake",
    "New intake",
    (
        Fieldset(
            "The case",
            (
                Input(
                    "case_id",
                    "Case reference",
                    required=True,
                    hint="letters, digits, - and _, e.g. C-2026-0042",
                ),
                Input("dispute.scheme", "Scheme", required=True, hint="e.g. tenancy"),
                Input("dispute.stage", "Stage", "select", STAGES, required=True),
                Input("dispute.summary", "What the dispute is about", "textarea", required=True),
                Input("has_other_support", "The client already has other support", "checkbox"),
            ),
        ),
        Fieldset(
            "The client",
            (
                Input("client.display_name", "Name", required=True),
                Input("client.contact.email", "Email", "email", hint="an email or a phone number"),
                Input("client.contact.phone", "Phone", "tel"),
                Input("client.birth_year", "Year of birth", "number", required=True),
                Input(
                    "client.languages",
                    "Languages",
                    "list",
                    required=True,
                    hint="language codes, comma separated: en, mi, sm",
                ),
                Input("client.methods", "Ways to meet", "checks", METHODS, required=True),
                Input("client.region", "Region", required=True, hint="e.g. auckland"),
                Input(
                    "client.lived_experience_preference.values",
                    "A supporter who has been through",
                    "list",
                    hint=TAGS,
                ),
                Input("client.access_needs", "Access needs", "list", hint=TAGS),
                Input(
                    "client.safety_concerns",
                    "Safety concerns",
                    "list",
                    hint="kept on the case record only, e.g. family_violence",
                ),
                Input(
                    "client.other_factors", "Anything else that matters for matching", "textarea"
                ),
            ),
        ),
        _availability("client"),
        Fieldset(
            "The other party",
            (
                Input("other_parties.0.party_id", "Party reference", required=True, hint="e.g. p1"),
                Input(
                    "other_parties.0.kind",
                    "Kind",
                    "select",
                    ("organisation", "person"),
                    required=True,
                ),
                Input("other_parties.0.name", "Name", required=True),
                Input(
                    "other_parties.0.role",
                    "Role",
                    "select",
                    ("respondent", "co_complainant", "other"),
                    required=True,
                ),
            ),
        ),
    ),
)

SUPPORTER = Form(
    "RegisterSupporter",
    "Register a supporter",
    (
        Fieldset(
            "The supporter",
            (
                Input("supporter_id", "Supporter reference", required=True, hint="e.g. S-0042"),
                Input("profile.display_name", "Name", required=True),
                Input("profile.contact.email", "Email", "email", hint="an email or a phone number"),
                Input("profile.contact.phone", "Phone", "tel"),
                Input("profile.birth_year", "Year of birth", "number", required=True),
                Input("profile.gender_identity", "Gender identity"),
                Input(
                    "profile.languages",
                    "Languages",
                    "list",
                    required=True,
                    hint="language codes, comma separated: en, mi, sm",
                ),
                Input(
                    "profile.lived_experience", "Has been through", "list", required=True, hint=TAGS
                ),
                Input("profile.skills", "Skills", "list", hint="comma separated"),
                Input("profile.methods", "Ways to meet", "checks", METHODS, required=True),
                Input("profile.region", "Region", required=True, hint="e.g. auckland"),
                Input(
                    "profile.caseload_cap", "Clients at a time, at most", "number", required=True
                ),
                Input("profile.youth_cleared", "Cleared to support clients under 18", "checkbox"),
            ),
        ),
        _availability("profile"),
    ),
)


def body_of(form: Form, sent: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The command's JSON body from the browser's fields (each name to every value sent)."""
    body: dict[str, Any] = {}
    for field in form.inputs:
        values = [v.strip() for v in sent.get(field.name, [])]
        value: Any
        if field.kind == "checkbox":
            value = bool(values)
        elif field.kind == "checks":
            value = [v for v in values if v] or None
        elif field.kind == "list":
            value = [part.strip() for v in values for part in v.split(",") if part.strip()]
            value = value or None
        elif field.kind == "number":
            value = _number(values[0]) if values and values[0] else None
        else:
            value = values[0] if values and values[0] else None
        if value is not None:
            put(body, field.name.split("."), value)
    return body


def _number(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text  # the model names the field and says why


def put(into: Any, path: list[str], value: Any) -> None:
    """``value`` at the dotted ``path`` in ``into`` (a number: a list's index)."""
    head, rest = path[0], path[1:]
    if isinstance(into, list):
        index = int(head)
        while len(into) <= index:
            into.append({})
        if rest:
            put(into[index], rest, value)
        else:
            into[index] = value
        return
    if not rest:
        into[head] = value
        return
    if head not in into:
        into[head] = [] if rest[0].isdigit() else {}
    put(into[head], rest, value)


def values_of(body: Mapping[str, Any] | list[Any], prefix: str = "") -> dict[str, Any]:
    """The body flattened back to each input's name: a refused form is shown as it was sent."""
    flat: dict[str, Any] = {}
    items = enumerate(body) if isinstance(body, list) else body.items()
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, dict | list) and value and not _scalars(value):
            flat.update(values_of(value, f"{name}."))
        else:
            flat[name] = ", ".join(map(str, value)) if isinstance(value, list) else value
    return flat


def _scalars(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, dict | list) for v in value)


def errors_by_input(form: Form, errors: Sequence[FieldError]) -> dict[str, str]:
    """Each error at its input: the one it names, or the first input inside the part it
    names (``client.contact`` is missing: said at ``client.contact.email``)."""
    placed: dict[str, str] = {}
    names = [i.name for i in form.inputs]
    for error in errors:
        at = next((n for n in names if n == error.field or n.startswith(f"{error.field}.")), None)
        if at is not None and at not in placed:
            placed[at] = error.reason
    return placed
