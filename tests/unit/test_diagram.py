"""The diagrams of docs/messages.md: drawn from the contracts, every message in them, current."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import TypeVar

import contracts
from alongside import diagram
from contracts import catalogue
from contracts.envelope import Command, Event, Message

ROOT = Path(__file__).resolve().parents[2]
M = TypeVar("M", bound=Message)


def _declared(base: type[M]) -> list[type[M]]:
    """Every class of ``base`` declared anywhere in contracts/, registered or not."""
    found: list[type[M]] = []
    for module_info in pkgutil.iter_modules(contracts.__path__):
        module = importlib.import_module(f"contracts.{module_info.name}")
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and issubclass(value, base)
                and value is not base
            ):
                found.append(value)
    return found


def test_every_command_in_contracts_is_drawn_at_its_service_and_the_console() -> None:
    commands = _declared(Command)
    assert len(commands) == len(catalogue.COMMANDS)
    for command in commands:
        node = f'cmd_{command.type_name}["{command.type_name}"]'
        assert node in diagram.service_chart(command.service), command.type_name
        assert node in diagram.console_chart(), command.type_name


def test_every_event_in_contracts_is_drawn_at_its_publisher_and_each_consumer() -> None:
    events = _declared(Event)
    assert len(events) == len(catalogue.EVENTS)
    publishers = diagram.publishers()
    for event in events:
        name = event.type_name
        assert f'out_{name}[/"{name}"/]' in diagram.service_chart(publishers[name]), name
    for service, taken in catalogue.CONSUMED_BY.items():
        for event in taken:
            name = event.type_name
            assert f'in_{name}[/"{name}"/]' in diagram.service_chart(service), (service, name)


def test_every_service_the_contracts_name_has_its_own_chart() -> None:
    named = {command.service for command in catalogue.COMMANDS.values()} | set(
        catalogue.CONSUMED_BY
    )
    text = diagram.markdown()
    for service in named:
        assert f"\n## {service}\n" in text
    assert text.count("```mermaid") == len(diagram.services()) + 1  # and the console's


def test_node_and_group_ids_are_plain_mermaid_ids() -> None:
    declared = re.compile(r"^\s+(?:subgraph )?([^\s(\[]+)[\s(\[]")
    for chart in [*map(diagram.service_chart, diagram.services()), diagram.console_chart()]:
        for line in chart.splitlines()[1:]:
            if line.strip() in ("end", "direction LR") or "-->" in line:
                continue
            found = declared.match(line)
            assert found is not None, line
            assert re.fullmatch(r"[a-z]+_[A-Za-z0-9_]+", found.group(1)), line


def test_a_service_taking_its_own_events_draws_them_coming_in_not_back_out() -> None:
    chart = diagram.service_chart("matching")
    assert 'in_ClientWaitlisted[/"ClientWaitlisted"/]' in chart
    assert "taker_matching" not in chart  # no arrow from matching back to itself


def test_docs_messages_md_is_what_the_contracts_give_now() -> None:
    # If this fails: alongside contracts diagram --write docs/messages.md
    assert diagram.stale(ROOT / diagram.WRITTEN_TO) is None


def test_a_stale_or_missing_file_is_named_with_how_to_make_it_again(tmp_path: Path) -> None:
    path = tmp_path / "messages.md"
    assert "does not exist" in (diagram.stale(path) or "")
    lines = diagram.markdown().splitlines(keepends=True)
    lines[4] = "someone edited this by hand\n"
    path.write_text("".join(lines))
    said = diagram.stale(path) or ""
    assert "from line 5" in said
    assert f"alongside contracts diagram --write {path}" in said
    path.write_text(diagram.markdown())
    assert diagram.stale(path) is None
