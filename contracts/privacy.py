"""Which contract fields hold a person's data, and which of that is sensitive.

A field is marked where it is declared, ``display_name: Annotated[ShortText, PERSONAL]``,
and the mark is in its JSON Schema as ``"x-privacy": "personal"`` or ``"sensitive"``, for
outside tools as for ours. An unmarked field holds neither: ids, kinds, dates of events,
outcomes, counts.

- **personal**: identifies or contacts a person (names, contact details, year of birth,
  gender identity, who they are connected to);
- **sensitive**: what the people we serve are most exposed by (lived experience such as
  prison, addiction, mental illness or violence, cultural background, access and safety
  needs, vetting evidence and record checks, the dispute and free-text notes).

Events carry neither (``tests/unit/test_privacy.py`` fails if one does), and logs carry
neither (the same test file, against a whole journey's log lines).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field

Privacy = Literal["personal", "sensitive"]
KEYWORD = "x-privacy"

PERSONAL: Any = Field(json_schema_extra={KEYWORD: "personal"})
SENSITIVE: Any = Field(json_schema_extra={KEYWORD: "sensitive"})


def marked(model: type[BaseModel]) -> dict[str, Privacy]:
    """Every marked field of ``model``, however deeply nested, by its dotted path
    (``client.contact``, ``evidence.reference``)."""
    schema = model.model_json_schema()
    return dict(_walk(schema, schema.get("$defs", {}), "", set()))


def _walk(
    node: Any, defs: dict[str, Any], path: str, seen: set[str]
) -> Iterator[tuple[str, Privacy]]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, defs, path, seen)
        return
    if not isinstance(node, dict):
        return
    if KEYWORD in node:
        yield path, node[KEYWORD]
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        yield from _walk(defs[ref.rsplit("/", 1)[-1]], defs, path, seen | {ref})
    for key in ("anyOf", "oneOf", "allOf", "items", "prefixItems", "additionalProperties"):
        if key in node:
            yield from _walk(node[key], defs, path, seen)
    for name, prop in (node.get("properties") or {}).items():
        yield from _walk(prop, defs, f"{path}.{name}" if path else name, seen)
