"""A ruleset's test cases (``cases.yaml``): facts, and the decision they must give.

Each case is a whole fact of the ruleset's kind and the outcome it decides::

    - name: a suspended supporter is ineligible
      facts: {...}
      expect:
        outcome: ineligible
        fired: [suspended]  # optional: exactly the rules that fire, when given
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.rules import FACTS, Kind
from services.rules.located import Located, expect_mapping, expect_text, read

CASE_KEYS = {"name", "facts", "expect"}
EXPECT_KEYS = {"outcome", "fired"}


@dataclass(frozen=True)
class Case:
    name: str
    facts: dict[str, Any]
    outcome: str
    fired: tuple[str, ...] | None  # None: not checked
    line: int


def read_cases(path: Path, kind: Kind) -> list[Case]:
    doc = read(path)
    if not isinstance(doc.data, list) or not doc.data:
        raise doc.error((), "a cases file is a non-empty list of cases")
    return [_case(doc, raw, i, kind) for i, raw in enumerate(doc.data)]


def _case(doc: Located, raw: Any, i: int, kind: Kind) -> Case:
    raw = expect_mapping(doc, raw, (i,), CASE_KEYS, CASE_KEYS)
    expect = expect_mapping(doc, raw["expect"], (i, "expect"), EXPECT_KEYS, {"outcome"})
    try:
        facts = FACTS[kind].model_validate(raw["facts"]).model_dump(mode="json")
    except Exception as error:
        raise doc.error((i, "facts"), f"facts do not fit {kind.value}: {error}") from None
    fired = expect.get("fired")
    if fired is not None and (
        not isinstance(fired, list) or not all(isinstance(f, str) for f in fired)
    ):
        raise doc.error((i, "expect", "fired"), "fired is a list of rule ids")
    return Case(
        expect_text(doc, raw["name"], (i, "name")),
        facts,
        str(expect["outcome"]),
        tuple(sorted(fired)) if fired is not None else None,
        doc.lines.get((i,), 0),
    )
