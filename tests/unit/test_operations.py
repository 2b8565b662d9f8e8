"""What operators read stays true: every metric we keep is in docs/operations.md and on the
Grafana dashboard, the dashboard asks only for metrics that exist, and every command the
guide names exists, with the options it gives."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import typer

from alongside.cli import app
from runtime import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "alongside.json").read_text())
GUIDE = (ROOT / "docs" / "operations.md").read_text()


def exposed() -> dict[str, str]:
    """Each family's name, as Prometheus shows it, by its type (FastStream's included)."""
    metrics.faststream_middleware("tests")  # FastStream's families, registered on first use
    names = {}
    for family in metrics.REGISTRY.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        names[name] = family.type
    return names


def queried() -> set[str]:
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    return {m for expr in exprs for m in re.findall(r"\b(?:alongside|faststream)_[a-z_]+", expr)}


def test_the_dashboard_asks_only_for_metrics_that_exist() -> None:
    families = exposed()
    series = {*families} | {
        f"{n}_{s}"
        for n, t in families.items()
        if t == "histogram"
        for s in ("bucket", "sum", "count")
    }
    assert queried() <= series, queried() - series


def test_every_metric_of_ours_is_on_the_dashboard_and_in_the_guide() -> None:
    ours = {name for name in exposed() if name.startswith("alongside_")}
    on_dashboard = {re.sub(r"_(bucket|sum|count)$", "", name) for name in queried()}
    assert ours - on_dashboard == set()
    assert {name for name in ours if f"`{name}`" not in GUIDE} == set()


def test_the_dashboard_reads_one_prometheus_chosen_on_import() -> None:
    sources = {
        json.dumps(p["datasource"], sort_keys=True)
        for p in DASHBOARD["panels"]
        if "datasource" in p
    }
    assert sources == {'{"type": "prometheus", "uid": "${DS_PROMETHEUS}"}'}
    assert [i["name"] for i in DASHBOARD["__inputs"]] == ["DS_PROMETHEUS"]


def named_commands() -> list[str]:
    """Each ``alongside ...`` command line the guide names: in backticks (perhaps across a
    line break) or on a line of a shell block, its comment left out."""
    named = re.findall(r"`(alongside [^`]+)`", GUIDE)
    for block in re.findall(r"```sh\n(.*?)```", GUIDE, flags=re.DOTALL):
        named += [
            line.split("#")[0].strip()
            for line in block.splitlines()
            if line.startswith("alongside ")
        ]
    return [" ".join(line.split()) for line in named]


def test_every_command_the_guide_names_exists_with_its_options() -> None:
    cli = typer.main.get_command(app)
    named = named_commands()
    assert "alongside deadletters replay --all --org harbour-ombudsman --service rules" in named
    for line in named:
        words, command, depth = shlex.split(line)[1:], cli, 0
        for word in words:
            if word not in getattr(command, "commands", {}):
                break
            command, depth = command.commands[word], depth + 1  # type: ignore[attr-defined]
        assert depth >= 1, f"{line}: no such command"
        assert not hasattr(command, "commands") or depth == len(words), f"{line}: which one?"
        options = {o for param in command.params for o in (*param.opts, *param.secondary_opts)}
        unknown = [w for w in words if w.startswith("--") and w.split("=")[0] not in options]
        assert unknown == [], f"{line}: no option {', '.join(unknown)}"
