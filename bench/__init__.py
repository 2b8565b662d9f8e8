"""Benchmarks: each a script with a fixed seed whose last line is one JSON object."""

from __future__ import annotations

from nats.js import JetStreamContext

from runtime import topology
from runtime.clock import SYSTEM
from runtime.registry import Registry


async def register(js: JetStreamContext, *orgs: str) -> None:
    """Register the organisations a benchmark uses, as an operator would."""
    registry = Registry(await js.key_value(topology.REGISTRY_BUCKET), SYSTEM)
    for org in orgs:
        await registry.add(org, f"Benchmark {org}")
