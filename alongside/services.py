"""Every service, by name, and how to run them in this process.

A service is a ``bootstrap`` (dependencies from a NATS connection) and a
``register`` (its FastStream subscribers). ``alongside up`` runs them all
against the embedded server, or the named ones against a configured NATS, so
the same code runs as one process or as separately scaled replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from contracts import catalogue, subjects
from runtime import metrics, topology, tracing
from runtime.bus import make_broker
from runtime.clock import SYSTEM, Clock
from runtime.logging import get_logger
from runtime.registry import Registry
from runtime.settings import Settings
from services.intake import app as intake_app
from services.intake import bootstrap as intake_bootstrap
from services.matching import app as matching_app
from services.matching import bootstrap as matching_bootstrap
from services.notifications import app as notifications_app
from services.notifications import bootstrap as notifications_bootstrap
from services.rules import app as rules_app
from services.rules import bootstrap as rules_bootstrap
from services.scheduling import app as scheduling_app
from services.scheduling import bootstrap as scheduling_bootstrap

log = get_logger(__name__)


@dataclass(frozen=True)
class Service:
    name: str
    bootstrap: Callable[[Client, Settings, Clock], Awaitable[Any]]
    register: Callable[[NatsBroker, Any], None]
    # Long-running background work (watching, sweeping), if the service has any.
    run: Callable[[Any], Coroutine[Any, Any, None]] | None = None


SERVICES: dict[str, Service] = {
    "intake": Service("intake", intake_bootstrap.bootstrap, intake_app.register, intake_app.run),
    "rules": Service("rules", rules_bootstrap.bootstrap, rules_app.register, rules_app.run),
    "matching": Service(
        "matching", matching_bootstrap.bootstrap, matching_app.register, matching_app.run
    ),
    "scheduling": Service(
        "scheduling", scheduling_bootstrap.bootstrap, scheduling_app.register, scheduling_app.run
    ),
    "notifications": Service(
        "notifications",
        notifications_bootstrap.bootstrap,
        notifications_app.register,
        notifications_app.run,
    ),
}


@dataclass
class Running:
    """Services started in this process, by name; ``stop`` them together."""

    brokers: dict[str, NatsBroker] = field(default_factory=dict)  # connected
    ready: set[str] = field(default_factory=set)  # answering
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    deps: dict[str, Any] = field(default_factory=dict)
    spans: list[TracerProvider] = field(default_factory=list)

    def flush_spans(self) -> None:
        """Export every span ended so far (they go in batches otherwise)."""
        for spans in self.spans:
            spans.force_flush()

    async def stop(self) -> None:
        """Stop every service started here; stopping again does nothing."""
        tasks, brokers = self.tasks, list(self.brokers.values())
        self.tasks = []
        self.brokers.clear()
        self.ready.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: background work that does not stop in time is left behind, logged,
            # rather than holding the whole process up.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            for task in stuck:
                log.warning("background_work_did_not_stop", task=task.get_name())
        for broker in brokers:
            await broker.stop()
        self.flush_spans()
        spans, self.spans = self.spans, []
        for provider in spans:
            provider.shutdown()  # after every flush: a shared exporter stops with the first


async def start(
    url: str,
    names: list[str],
    settings: Settings | None = None,
    clock: Clock = SYSTEM,
    credentials: Callable[[str], Path | None] = lambda service: None,
    span_exporter: SpanExporter | None = None,
    running: Running | None = None,
) -> Running:
    """Start the named services; each gets its own broker (connection), as the user
    ``credentials(name)`` names (its own, allowed only what it needs). Every service, its
    sweeps included, reads the time from ``clock``. Spans of every message handled go to
    ``span_exporter``, or where the settings say (``runtime.tracing``). ``running``, if
    given, shows each service as it connects and becomes ready (the health endpoints)."""
    settings = settings or Settings()
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    running = running if running is not None else Running()
    exporter = span_exporter or tracing.exporter_of(settings)
    for name in names:
        service = SERVICES[name]
        spans = tracing.provider(name, exporter) if exporter is not None else None
        if spans is not None:
            running.spans.append(spans)
        broker = make_broker(url, name, credentials(name), settings.metrics, spans)
        await broker.connect()
        running.brokers[name] = broker
        deps = await service.bootstrap(broker.connection, settings, clock)
        service.register(broker, deps)
        await broker.start()
        await _answering(broker, name)
        running.deps[name] = deps
        await _from_zero(broker, name, clock)
        running.ready.add(name)
        if service.run is not None:
            running.tasks.append(asyncio.create_task(service.run(deps), name=f"{name}-background"))
        log.info("service_started", service=name)
    return running


async def _from_zero(broker: NatsBroker, name: str, clock: Clock) -> None:
    """The service's counters at zero for every label set known now (``metrics``), the
    organisations registered now among them: dashboards show 0, not "no data"."""
    try:
        js = broker.connection.jetstream()
        orgs = [
            r.org for r in await Registry(await js.key_value(topology.REGISTRY_BUCKET), clock).all()
        ]
    except Exception as error:  # never what stops a service: the rest still start at zero
        log.warning("registry_unread_for_metrics", service=name, error=type(error).__name__)
        orgs = []
    metrics.start_at_zero(name, orgs)


READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


async def _answering(broker: NatsBroker, name: str) -> None:
    """A service is up when it answers: ask it for a command it does not have (no effect,
    nothing stored) until the reply comes back through the queue group."""
    if not any(command.service == name for command in catalogue.COMMANDS.values()):
        await broker.connection.flush()
        return
    probe = subjects.command(subjects.READINESS_PROBE_ORG, name, "Ping", name)
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
    while True:
        try:
            await broker.connection.request(probe, b"", timeout=1.0)
            return
        except (NoRespondersError, NatsTimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"{name} did not start answering within {READY_TIMEOUT_S} s"
                ) from None
            await asyncio.sleep(0.02)


async def stop(running: Running) -> None:
    await running.stop()
