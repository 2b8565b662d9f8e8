"""Messages from the exported schemas: valid payloads drawn by hypothesis, then mutated by what
the schema says, or filled with absurd values it still allows."""

from __future__ import annotations

import contextlib
import copy
import json
import random
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from hypothesis_jsonschema import from_schema

from bench.fuzz.schemas import VALIDATORS
from bench.fuzz.shared import SEED, Doc, Json, Real

LEAF_NOISE = ("title", "description", "default", "examples")


def _leaf(schema: Doc) -> st.SearchStrategy[Json]:
    leaf: dict[str, Any] = {k: v for k, v in schema.items() if k not in LEAF_NOISE}
    return from_schema(leaf)


ANY_JSON: st.SearchStrategy[Json] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20)
)


def strategy(schema: Json) -> st.SearchStrategy[Json]:
    """Values valid for ``schema``: objects and arrays composed here, leaves drawn by
    hypothesis-jsonschema."""
    if not isinstance(schema, dict) or not schema:
        return ANY_JSON
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return st.one_of([strategy(branch) for branch in schema[combinator]])
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return strategy({**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}})
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("type") == "object" or "properties" in schema:
        return _object(schema)
    if schema.get("type") == "array":
        limit = schema.get("maxItems", 4)
        return st.lists(
            strategy(schema.get("items", {})),
            min_size=schema.get("minItems", 0),
            max_size=min(limit, max(4, schema.get("minItems", 0))),
        )
    if "type" not in schema:
        return ANY_JSON
    return _leaf(schema)


def _object(schema: Doc) -> st.SearchStrategy[Json]:
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if not properties:
        values = strategy(extra) if isinstance(extra, dict) else ANY_JSON
        return st.dictionaries(st.text(max_size=12), values, max_size=4)
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {k: strategy(v) for k, v in properties.items() if k in required},
        optional={k: strategy(v) for k, v in properties.items() if k not in required},
    )


def examples(values: st.SearchStrategy[Json], count: int, salt: int) -> list[Json]:
    """``count`` values drawn deterministically (a seeded, generate-only @given loop)."""
    found: list[Json] = []

    @seed(SEED + salt)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(values)
    def collect(value: Json) -> None:
        found.append(value)

    with contextlib.suppress(HypothesisException):
        collect()
    return found


class NotPools:
    """Values hypothesis-jsonschema draws from ``{"not": leaf}``: invalid for that leaf."""

    SCALARS = ("string", "integer", "number", "boolean", "null")

    def __init__(self) -> None:
        self._pools: dict[str, list[Json]] = {}

    def draw(self, leaf: Doc, rng: random.Random) -> Json | None:
        key = json.dumps(leaf, sort_keys=True)
        if key not in self._pools:
            anti: dict[str, Any] = {
                "type": list(self.SCALARS),
                "not": {k: v for k, v in leaf.items() if k not in LEAF_NOISE},
            }
            try:
                self._pools[key] = examples(from_schema(anti), 8, len(self._pools))
            except Exception:  # a schema hypothesis-jsonschema cannot negate
                self._pools[key] = []
        pool = self._pools[key]
        return copy.deepcopy(rng.choice(pool)) if pool else None


NOT_POOLS = NotPools()


JsonPath = tuple[str | int, ...]


def branch_of(schema: Doc, value: Json) -> Doc:
    """The branch of an ``anyOf`` that ``value`` takes (the schema itself otherwise)."""
    for combinator in ("anyOf", "oneOf"):
        for option in schema.get(combinator, []):
            if VALIDATORS.valid(option, value):
                return branch_of(option, value)
    return schema


def nodes(schema: Json, value: Json, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Doc, Json]]:
    """Every node of ``value`` with the schema it should satisfy."""
    schema = branch_of(schema, value) if isinstance(schema, dict) else {}
    yield path, schema, value
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, item in value.items():
            yield from nodes(properties.get(key, {}), item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nodes(schema.get("items", {}), item, (*path, index))


def get(doc: Json, path: JsonPath) -> Json:
    for part in path:
        doc = doc[part]
    return doc


def put(doc: Json, path: JsonPath, value: Json) -> None:
    get(doc, path[:-1])[path[-1]] = value


WRONG_TYPED: tuple[Json, ...] = (None, True, 0, -1, 1.5, "text", "7", [], {}, ["x"], {"k": "v"})


def wrong_type(value: Json, rng: random.Random) -> Json:
    return rng.choice([w for w in WRONG_TYPED if type(w) is not type(value)])


def out_of_range(schema: Doc, value: Json, rng: random.Random) -> Json:
    """A value just outside what ``schema`` allows (of the wrong type if nothing bounds it)."""
    options: list[Json] = []
    if "minimum" in schema:
        options.append(schema["minimum"] - 1)
    if "maximum" in schema:
        options.append(schema["maximum"] + 1)
    if "maxLength" in schema:
        options.append("x" * (schema["maxLength"] + 1))
    if schema.get("minLength", 0) > 0:
        options.append("")
    if "pattern" in schema:
        options.extend(["Not A Token!", "", "a.b", "ünï", "x" * 300])
    if "enum" in schema or "const" in schema:
        options.append("zz_not_a_member")
    if "maxItems" in schema and isinstance(value, list):
        options.append((value or ["x"]) * (schema["maxItems"] + 1))
    if schema.get("minItems", 0) > 0:
        options.append([])
    fmt = schema.get("format")
    if fmt in ("date", "date-time", "time"):
        options.extend(
            [
                "2024-02-30",
                "2024-01-01T10:00:00",
                "2024-01-01T25:00:00Z",
                "10:00:00+25:00",
                "yesterday",
                "0000-00-00",
            ]
        )
    return rng.choice(options) if options else wrong_type(value, rng)


MUTATIONS = (
    "missing_required",
    "unknown_field",
    "wrong_type",
    "out_of_range",
    "null",
    "not_schema",
)


def mutate(schema: Doc, doc: Doc, under: JsonPath, rng: random.Random) -> tuple[Doc, str]:
    """One schema-guided mutation of a node at or under ``under``; returns the mutation."""
    doc = copy.deepcopy(doc)
    candidates = [n for n in nodes(schema, doc) if n[0][: len(under)] == under]
    path, node_schema, value = rng.choice(candidates)
    op = rng.choice(MUTATIONS)
    objects = [n for n in candidates if isinstance(n[2], dict)]
    if op == "missing_required":
        holders = [n for n in objects if set(n[1].get("required", [])) & set(n[2])]
        if holders:
            _, holder_schema, holder = rng.choice(holders)
            del holder[rng.choice(sorted(set(holder_schema["required"]) & set(holder)))]
            return doc, op
        op = "unknown_field"
    if op == "unknown_field" and objects:
        rng.choice(objects)[2]["zz_unknown"] = rng.choice(WRONG_TYPED)
        return doc, op
    if not path:  # the whole document: only its fields are replaced
        return mutate(schema, doc, (*under, "data"), rng) if under == () else (doc, "none")
    if op == "not_schema":
        drawn = NOT_POOLS.draw(node_schema, rng) if "type" in node_schema else None
        if drawn is not None or "type" in node_schema:
            put(doc, path, drawn)
            return doc, op
        op = "wrong_type"
    if op == "out_of_range":
        put(doc, path, out_of_range(node_schema, value, rng))
    elif op == "null":
        put(doc, path, None)
    else:
        op = "wrong_type"
        put(doc, path, wrong_type(value, rng))
    return doc, op


ABSURD_DATES = ("0001-01-01", "9999-12-31", "1970-01-01", "2000-02-29")
ABSURD_DATE_TIMES = (
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00+00:00",
    "2199-12-31T23:59:59-23:59",
)
ABSURD_TIMES = ("23:59:59.999999", "00:00:00", "12:00:00+14:00", "12:00:00-23:59")
ABSURD_INTS = (2**63, -(2**63), 2**53 + 1, 10**30, -1, 0)
ABSURD_NUMBERS = (1e308, -1e308, 5e-324, 0.0, -0.0)
WEIRD_TEXT = "\u202e\u0000\u200b\U0001f600 zalgo\u0301\u0301 "


def absurd_leaf(schema: Doc, value: Json, name: str, real: Real, rng: random.Random) -> Json:
    """A value ``schema`` allows but nobody would send (or a real record's id)."""
    ids = real.ids_for(name)
    if ids is not None and isinstance(value, str):
        return rng.choice(ids)
    fmt = schema.get("format")
    choices: dict[str | None, tuple[Json, ...]] = {
        "date": ABSURD_DATES,
        "date-time": ABSURD_DATE_TIMES,
        "time": ABSURD_TIMES,
    }
    if fmt in choices:
        return rng.choice(choices[fmt])
    kind = schema.get("type")
    if kind == "integer":
        bounded = [b for b in (schema.get("minimum"), schema.get("maximum")) if b is not None]
        return rng.choice(bounded or ABSURD_INTS)
    if kind == "number":
        return rng.choice(ABSURD_NUMBERS)
    if kind == "string" and "pattern" not in schema and "enum" not in schema:
        limit = schema.get("maxLength", 20_000)
        return (WEIRD_TEXT * (limit // len(WEIRD_TEXT) + 1))[: max(limit, 1)]
    return value


def absurd(schema: Doc, doc: Doc, real: Real, rng: random.Random) -> Doc:
    """Replace about half of the payload's leaves (and lists) with absurd allowed values."""
    doc = copy.deepcopy(doc)
    for path, node_schema, value in list(nodes(schema, doc)):
        if len(path) < 2 or path[0] != "data" or rng.random() < 0.5:
            continue
        name = str(path[-1])
        if isinstance(value, list) and value and "maxItems" not in node_schema:
            put(doc, path, value * (500 // len(value)))
        elif not isinstance(value, dict | list):
            put(doc, path, absurd_leaf(node_schema, value, name, real, rng))
    return doc
