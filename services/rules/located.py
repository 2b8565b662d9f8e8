"""Rules files read as YAML that remembers where everything is written.

An ops person edits these files by hand: every error names the file and the line
(``RulesFileError``), found through the line of every mapping key and list item
(``Located``). Duplicate keys are errors, never the last one silently winning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class RulesFileError(ValueError):
    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = str(path), line, message
        super().__init__(f"{path}:{line or '?'}: {message}")


_SCALARS = yaml.SafeLoader("")  # only its scalar constructors are used


class Located:
    """A parsed YAML document that remembers the line of every mapping key and item."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[Any, ...], int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            raise RulesFileError(
                path, mark.line + 1 if mark else None, f"not YAML: {error}"
            ) from error
        self.data = self._convert(node, ()) if node is not None else None

    def _convert(self, node: yaml.Node, where: tuple[Any, ...]) -> Any:
        self.lines[where] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, where)
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(item, (*where, i)) for i, item in enumerate(node.value)]
        return _SCALARS.construct_object(node)

    def _mapping(self, node: yaml.MappingNode, where: tuple[Any, ...]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key == "<<":  # YAML merge key: explicit keys win over merged ones
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    merged = {**self._convert(source, (*where, key)), **merged}
                continue
            if key in result:
                raise RulesFileError(
                    self.path, key_node.start_mark.line + 1, f"duplicate key {key!r}"
                )
            self.lines[(*where, key)] = key_node.start_mark.line + 1
            result[key] = self._convert(value_node, (*where, key))
        return {**merged, **result}

    def error(self, where: tuple[Any, ...], message: str) -> RulesFileError:
        while where and where not in self.lines:
            where = where[:-1]
        return RulesFileError(self.path, self.lines.get(where), message)


def read(path: Path) -> Located:
    return Located(path, path.read_text())


def expect_mapping(
    doc: Located, value: Any, where: tuple[Any, ...], allowed: set[str], required: set[str]
) -> dict[str, Any]:
    """``value`` as a mapping of only ``allowed`` keys, with every ``required`` one."""
    if not isinstance(value, dict):
        raise doc.error(where, f"expected a mapping with keys {sorted(allowed)}")
    unknown = set(value) - allowed
    if unknown:
        raise doc.error(
            (*where, sorted(unknown)[0]),
            f"unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(allowed))}",
        )
    missing = required - set(value)
    if missing:
        raise doc.error(where, f"missing key {sorted(missing)[0]!r}")
    return value


def expect_text(doc: Located, value: Any, where: tuple[Any, ...]) -> str:
    """``value`` as non-empty text, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise doc.error(where, "expected non-empty text")
    return value.strip()
