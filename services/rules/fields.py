"""The fields of a fact model (``contracts.rules.FACTS``), typed as the rules language sees them.

A condition may only name a field of its ruleset's facts, and only with the operators
and values its type allows (``conditions``): a number, a whole number, true or false,
text (perhaps one of a few choices), a list of tags, or a list of objects with fields of
their own.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

FieldType = Literal["number", "integer", "bool", "text", "tags", "objects"]


@dataclass(frozen=True)
class FieldSpec:
    type: FieldType
    choices: tuple[str, ...] | None = None
    item_fields: dict[str, FieldSpec] | None = None


def field_specs(model: type[Any]) -> dict[str, FieldSpec]:
    specs = {}
    for name, info in model.model_fields.items():
        specs[name] = _spec(info.annotation)
    return specs


def _spec(annotation: Any) -> FieldSpec:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return FieldSpec("bool")
    if annotation is int:
        return FieldSpec("integer")
    if annotation is float:
        return FieldSpec("number")
    if annotation is str:
        return FieldSpec("text")
    if origin is Literal:
        return FieldSpec("text", choices=tuple(typing.get_args(annotation)))
    if origin is list:
        (item,) = typing.get_args(annotation)
        if item is str:
            return FieldSpec("tags")
        return FieldSpec("objects", item_fields=field_specs(item))
    if isinstance(annotation, types.UnionType):
        raise TypeError(f"fact fields may not be optional: {annotation}")
    raise TypeError(f"unsupported fact field type {annotation}")
