"""Benchmarks: each a script with a fixed seed whose last line is one JSON object."""

from __future__ import annotations

from nats.js import JetStreamContext

from runtime import registry
from runtime.clock import SYSTEM
from runtime.settings import Settings


async def register(js: JetStreamContext, *orgs: str) -> None:
    """Register the organisations a benchmark uses, as an operator would."""
    for org in orgs:
        await registry.register(js, org, f"Benchmark {org}", Settings(), SYSTEM)
