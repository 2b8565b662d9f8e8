"""Who sends each service what, and what it publishes: Mermaid flowcharts drawn from
``contracts/`` alone, kept in ``docs/messages.md``.

``alongside contracts diagram --write docs/messages.md`` writes them; CI runs ``--check``,
so a contract change that leaves the picture behind fails there. Only what the contracts
say is drawn: the service each command goes to (``Command.service``), who may send it
(the console any; an organisation's integration ``catalogue.INTEGRATION_COMMANDS``), the
service that publishes each event (the contracts module declaring it) and the events each
service's durable consumer takes (``catalogue.CONSUMED_BY``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from contracts import catalogue, intake, matching, notifications, rules, scheduling, subjects, views
from contracts.envelope import Event

WRITTEN_TO = "docs/messages.md"
CONSOLE = subjects.CONSOLE
# The credential kind (``CredentialRecord.kind``) that may send an organisation's intake.
INTEGRATION = "integration"

# Each event's publisher is the service whose contracts module declares it. Views are
# intake's: it answers them and records each reading (contracts/views.py).
_DECLARED: tuple[tuple[str, tuple[type[Event], ...]], ...] = (
    (intake.SERVICE, intake.EVENTS),
    (intake.SERVICE, views.EVENTS),
    (rules.SERVICE, rules.EVENTS),
    (matching.SERVICE, matching.EVENTS),
    (scheduling.SERVICE, scheduling.EVENTS),
    (notifications.SERVICE, notifications.EVENTS),
)

_SENDERS = {CONSOLE: "the console", INTEGRATION: "an integration"}


def publishers() -> dict[str, str]:
    """The service that publishes each event of the catalogue."""
    published = {event.type_name: service for service, events in _DECLARED for event in events}
    unknown = sorted(set(catalogue.EVENTS) - set(published))
    if unknown:  # a new contracts module: say where it goes rather than draw it nowhere
        raise ValueError(
            f"no publisher known for {', '.join(unknown)}: add its module to "
            "alongside.diagram._DECLARED"
        )
    return published


def senders(command: str) -> tuple[str, ...]:
    """Who may send ``command``, as the contracts say."""
    return (CONSOLE, INTEGRATION) if command in catalogue.INTEGRATION_COMMANDS else (CONSOLE,)


def consumers() -> dict[str, tuple[str, ...]]:
    """The services whose consumer takes each event (in ``CONSUMED_BY``'s order)."""
    taken: dict[str, list[str]] = {}
    for service, events in catalogue.CONSUMED_BY.items():
        for event in events:
            taken.setdefault(event.type_name, []).append(service)
    return {name: tuple(services) for name, services in taken.items()}


def services() -> tuple[str, ...]:
    """Every service the contracts name, in the catalogue's order."""
    named = [command.service for command in catalogue.COMMANDS.values()]
    named += publishers().values()
    named += catalogue.CONSUMED_BY
    return tuple(dict.fromkeys(named))


def accepted_by(service: str) -> list[str]:
    """The commands ``service`` answers, in the catalogue's order."""
    return [name for name, command in catalogue.COMMANDS.items() if command.service == service]


def _id(*parts: str) -> str:
    # Mermaid ids: letters, digits and underscores only. Every id has a prefix, so none is
    # a keyword ("end") or starts with the "o" or "x" that Mermaid reads as an edge's end.
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))


# Services are stadiums, commands boxes, events slanted boxes.
_SHAPES = {"service": ('(["', '"])'), "command": ('["', '"]'), "event": ('[/"', '"/]')}


def _quoted(text: str) -> str:
    return text.replace('"', "#quot;")


def _node(node_id: str, label: str, shape: str) -> str:
    opening, closing = _SHAPES[shape]
    return f"{node_id}{opening}{_quoted(label)}{closing}"


class _Chart:
    """One flowchart, read left to right. Nodes are declared first, then the groups, then
    the edges, so that no node lands in a group by being named in it first."""

    def __init__(self) -> None:
        self._nodes: dict[str, str] = {}
        self._groups: list[str] = []
        self._edges: list[str] = []

    def node(self, node_id: str, label: str) -> str:
        self._nodes.setdefault(node_id, f"    {_node(node_id, label, 'service')}")
        return node_id

    def group(self, group_id: str, title: str, names: Sequence[str], kind: str) -> str:
        """A box titled ``title`` with a node per message name. ``kind``: ``cmd`` for
        commands, ``in`` or ``out`` for events (one may be drawn twice in a chart, published
        and taken back in, so its id says which)."""
        shape = "command" if kind == "cmd" else "event"
        self._groups.append(f'    subgraph {group_id} ["{_quoted(title)}"]')
        # Drawn as its own graph: "LR" stacks its unlinked nodes in one column, a list.
        self._groups.append("        direction LR")
        self._groups += [f"        {_node(_id(kind, name), name, shape)}" for name in names]
        self._groups.append("    end")
        return group_id

    def edge(self, start: str, end: str) -> None:
        self._edges.append(f"    {start} --> {end}")

    def text(self) -> str:
        return "\n".join(["flowchart LR", *self._nodes.values(), *self._groups, *self._edges])


def _grouped(
    names: Iterable[str], key: Callable[[str], tuple[str, ...]]
) -> list[tuple[tuple[str, ...], list[str]]]:
    """``names`` grouped by ``key``: groups, and names within them, in the order met."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name in names:
        groups.setdefault(key(name), []).append(name)
    return list(groups.items())


def service_chart(service: str) -> str:
    """The commands ``service`` accepts, by who may send them; the events its consumer takes,
    by publisher; the events it publishes, by the other services that take them."""
    published, taken_by, order = publishers(), consumers(), services()
    chart = _Chart()
    here = chart.node(_id("service", service), service)

    for who, names in _grouped(accepted_by(service), senders):
        title = "commands from " + " or ".join(_SENDERS[sender] for sender in who)
        group = chart.group(_id("commands", *who), title, names, "cmd")
        for sender in who:
            chart.edge(chart.node(_id("sender", sender), _SENDERS[sender]), group)
        chart.edge(group, here)

    # By publisher in the services' order; its own events last (taken back in: drawn as
    # coming in, so that no arrow runs back into the service).
    takes = [event.type_name for event in catalogue.CONSUMED_BY.get(service, ())]
    by_publisher = sorted(
        _grouped(takes, lambda name: (published[name],)),
        key=lambda group: (group[0][0] == service, order.index(group[0][0])),
    )
    for (publisher,), names in by_publisher:
        if publisher == service:
            group = chart.group(_id("from", "itself"), "its own events", names, "in")
        else:
            group = chart.group(_id("from", publisher), f"events from {publisher}", names, "in")
            chart.edge(chart.node(_id("publisher", publisher), publisher), group)
        chart.edge(group, here)

    def others(name: str) -> tuple[str, ...]:
        return tuple(taker for taker in taken_by.get(name, ()) if taker != service)

    publishes = [name for name in catalogue.EVENTS if published[name] == service]
    # Groups in the order met; the events no other service takes last.
    for takers, names in sorted(_grouped(publishes, others), key=lambda group: not group[0]):
        if takers:
            title = f"events taken by {', '.join(takers)}"
            group = chart.group(_id("to", *takers), title, names, "out")
        else:
            group = chart.group(_id("to", "none"), "events no other service takes", names, "out")
        chart.edge(here, group)
        for taker in takers:
            chart.edge(group, chart.node(_id("taker", taker), taker))
    return chart.text()


def console_chart() -> str:
    """The console may send every command of the catalogue, each to its service."""
    chart = _Chart()
    here = chart.node(_id("sender", CONSOLE), _SENDERS[CONSOLE])
    for service in services():
        names = accepted_by(service)
        if names:
            group = chart.group(_id("commands", "to", service), f"to {service}", names, "cmd")
            chart.edge(here, group)
            chart.edge(group, chart.node(_id("service", service), service))
    return chart.text()


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'' if number == 1 else 's'}"


def _summary(service: str) -> str:
    commands = _count(len(accepted_by(service)), "command")
    published = sum(1 for publisher in publishers().values() if publisher == service)
    taken = len(catalogue.CONSUMED_BY.get(service, ()))
    takes = f"its consumer takes {_count(taken, 'event')}" if taken else "it consumes no event"
    return f"Accepts {commands}, publishes {_count(published, 'event')}; {takes}."


def _mermaid(chart: str) -> list[str]:
    return ["```mermaid", chart, "```", ""]


def markdown() -> str:
    """``docs/messages.md`` as the contracts give it now."""
    lines = [
        "# Messages by service",
        "",
        f"Generated from `contracts/` (catalogue {catalogue.VERSION}) by "
        f"`alongside contracts diagram --write {WRITTEN_TO}`; do not edit it by hand: CI runs "
        "`--check`.",
        "",
        "Each chart reads left to right: who may send the service its commands (boxes), and "
        "the events (slanted) its durable consumer takes, by publisher; then the events it "
        "publishes, by the other services that take them. Every event also reaches the "
        "organisation's own subscribers (docs/subscribers.md). Commands one service sends "
        "another are not in the contracts (`runtime/access.py`, `SERVICE_NEEDS`), so not drawn.",
        "",
    ]
    for service in services():
        lines += [f"## {service}", "", _summary(service), "", *_mermaid(service_chart(service))]
    lines += [
        "## console",
        "",
        f"Sends any command of the catalogue, as `{CONSOLE}` "
        "(`POST /api/orgs/{org}/commands/{Type}`). Which events its read model folds is not "
        "in the contracts.",
        "",
        *_mermaid(console_chart()),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def stale(path: Path) -> str | None:
    """Why ``path`` is not what the contracts give now, or None when it is."""
    again = f"run `alongside contracts diagram --write {path}`"
    try:
        held = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path} does not exist: {again}"
    wanted = markdown()
    if held == wanted:
        return None
    pairs = zip(held.splitlines(), wanted.splitlines(), strict=False)
    line = next(
        (number for number, (a, b) in enumerate(pairs, 1) if a != b),
        min(held.count("\n"), wanted.count("\n")) + 1,
    )
    return f"{path} differs from what the contracts give now (from line {line}): {again}"
