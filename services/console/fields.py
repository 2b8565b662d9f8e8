"""Who sees which fields (docs/decisions/0002-who-sees-which-fields.md): what a role may not
read is taken out of every answer the console gives it, pages, API and exports alike,
because every answer passes through here on its way from the services (``gate.send_as``).

A coordinator runs the case day to day: they reach the client and the supporter, record
choices and consent, and arrange meetings. They see every personal field that takes, and
of the sensitive ones only what that work needs: the client's access needs (to arrange a
meeting they can come to), and why each proposal was made and why the client waits (read
out to the client, who chooses by them). What the client disclosed about their safety,
the dispute in their words, lived experience (the client's wish, a supporter's own),
cultural preference and background, and anything else they noted are a supervisor's
(and an operator's): the people who answer for the organisation's people's data.

A withheld field is answered empty (an empty list or null; where the contract requires a
value, the word ``withheld``, so the answer still matches its documented schema) and named
in the answer's ``withheld`` when it held something, so a
coordinator knows that, say, safety concerns are recorded and to ask a supervisor before
choosing how to contact the client or where to meet. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from contracts.console import Problem, Role
from contracts.intake import PersonData
from contracts.views import CaseView, SupporterView

Path = tuple[str, ...]
# What a withheld field that must hold something holds instead (a valid tag and text).
WITHHELD_MARK = "withheld"

# What each role may not read, by where it is in each answer.
WITHHELD: dict[Role, dict[type[BaseModel], tuple[Path, ...]]] = {
    "coordinator": {
        CaseView: (
            ("case", "intake", "client", "safety_concerns"),
            ("case", "intake", "dispute", "summary"),
            ("case", "intake", "client", "lived_experience_preference"),
            ("case", "intake", "client", "cultural_preference"),
            ("case", "intake", "client", "other_factors"),
        ),
        SupporterView: (
            ("profile", "lived_experience"),
            ("profile", "cultural_background"),
            # Why a rule fired says what is on file (a record check's disclosure, months of
            # recovery): the rule's label says enough to act on.
            ("ineligible_because", "reason"),
        ),
    },
    "supervisor": {},
    "operator": {},
}


def sees_everything(role: Role | None) -> bool:
    return role is not None and not any(WITHHELD[role].values())


def limited(reply: Any, role: Role | None) -> Any:
    """The reply as ``role`` may read it: each field it may not read emptied and named in
    ``withheld``. No role (not one of the organisation's): as little as any role reads.
    Everything held about a person (``PersonData``) is only for a role that reads every
    field: it cannot be given in part (it answers a subject access request)."""
    paths = WITHHELD[role or "coordinator"]
    if isinstance(reply, PersonData) and not sees_everything(role):
        return Problem(
            title="Needs a supervisor",
            status=403,
            detail="everything held about a person is for a supervisor",
        )
    withheld = paths.get(type(reply), ())
    if not withheld or not isinstance(reply, BaseModel):
        return reply
    held: list[str] = []
    for path in withheld:
        reply, had = _emptied(reply, path)
        if had:
            held.append(".".join(path))
    return reply.model_copy(update={"withheld": held})


def _emptied(model: BaseModel, path: Path) -> tuple[BaseModel, bool]:
    """``model`` with the field at ``path`` empty; whether it held anything."""
    head, rest = path[0], path[1:]
    value = getattr(model, head)
    if rest and isinstance(value, list):  # the field in each item of a list
        items = [_emptied(item, rest) for item in value]
        had_any = any(had for _, had in items)
        return model.model_copy(update={head: [item for item, _ in items]}), had_any
    if rest:
        if value is None:
            return model, False
        inner, had = _emptied(value, rest)
        return model.model_copy(update={head: inner}), had
    field = type(model).model_fields[head]
    if not field.is_required():
        empty = field.get_default(call_default_factory=True)
    else:  # required, and not empty (a summary, a supporter's lived experience)
        empty = [WITHHELD_MARK] if isinstance(value, list) else WITHHELD_MARK
    return model.model_copy(update={head: empty}), value not in (None, "", [])
