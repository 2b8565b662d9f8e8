"""Benchmarks: each a script with a fixed seed whose last line is one JSON object."""

from __future__ import annotations

from pathlib import Path

from nats.js import JetStreamContext

from runtime import registry
from runtime.clock import SYSTEM
from runtime.settings import Settings
from runtime.vault import load_master_key


async def register(js: JetStreamContext, *orgs: str) -> None:
    """Register the organisations a benchmark uses, as an operator would."""
    for org in orgs:
        await registry.register(js, org, f"Benchmark {org}", Settings(), SYSTEM)


def master_key_env(folder: Path) -> dict[str, str]:
    """What a service process started by a benchmark needs to seal people's data: the
    deployment's master key, made in ``folder`` and shared by every process started so."""
    path = folder / "master.key"
    load_master_key(path, create=True)
    return {"ALONGSIDE_MASTER_KEY_FILE": str(path)}
