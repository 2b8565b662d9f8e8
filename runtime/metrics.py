"""What an operator watches: counters of this process, served on ``/metrics`` beside the
health endpoints (``runtime/health.py``), with FastStream's own per-subscriber metrics.

Labels are organisations, services, message types and outcomes: a handful each, never an
id or anything personal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faststream.message import StreamMessage
from faststream.nats.prometheus.provider import NatsMetricsSettingsProvider
from faststream.prometheus import ConsumeAttrs, PrometheusMiddleware
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from contracts import catalogue, subjects

REGISTRY = CollectorRegistry()

EVENTS_PUBLISHED = Counter(
    "alongside_events_published",
    "Events stored in the event stream, by type (intakes "
    "accepted are IntakeReceived, proposals MatchProposed, waitlistings ClientWaitlisted)",
    ["org", "type"],
    registry=REGISTRY,
)
COMMANDS = Counter(
    "alongside_commands",
    "Commands answered, by outcome (accepted, rejected, failed)",
    ["service", "type", "outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "alongside_dead_letters",
    "Messages a service gave up on, kept with the reason",
    ["org", "service"],
    registry=REGISTRY,
)
REDELIVERIES = Counter(
    "alongside_redeliveries",
    "Events handled again after a failed or unacknowledged attempt",
    ["service"],
    registry=REGISTRY,
)
DECISIONS = Counter(
    "alongside_rules_decisions",
    "Rules decisions, by kind and outcome",
    ["org", "kind", "outcome"],
    registry=REGISTRY,
)
DECISION_SECONDS = Histogram(
    "alongside_rules_decision_seconds",
    "Time to decide one case with the live ruleset",
    ["kind"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
QUEUE_PENDING = Gauge(
    "alongside_consumer_pending",
    "Events waiting for a service's durable consumer (its queue depth), as the server last said",
    ["service"],
    registry=REGISTRY,
)
QUEUE_UNACKED = Gauge(
    "alongside_consumer_unacknowledged",
    "Events delivered to a service and not yet acknowledged",
    ["service"],
    registry=REGISTRY,
)
# Matching's state as its last look found it (every ``figures_interval_s``); replicas each
# look, so aggregate across them with max, never sum.
WAITLISTED = Gauge(
    "alongside_waitlisted_clients", "Clients nobody can serve yet", ["org"], registry=REGISTRY
)
LONGEST_WAIT = Gauge(
    "alongside_waitlist_longest_wait_seconds",
    "How long the longest-waiting waitlisted client has waited",
    ["org"],
    registry=REGISTRY,
)
AWAITING_CHOICE = Gauge(
    "alongside_proposals_awaiting_choice",
    "Cases with proposals out that the client has not chosen from",
    ["org"],
    registry=REGISTRY,
)
HOLDS_ENDING_SOON = Gauge(
    "alongside_holds_ending_within_day",
    "Cases awaiting the client's choice whose held slots end within a day",
    ["org"],
    registry=REGISTRY,
)
CONSENTS_PENDING = Gauge(
    "alongside_consents_pending",
    "Matches the client chose that wait for every party's consent",
    ["org"],
    registry=REGISTRY,
)
RECONCILED = Counter(
    "alongside_reconciliation_finds",
    "What a sweep found left undone and finished (in a healthy run, none)",
    ["service", "what"],
    registry=REGISTRY,
)
# What each service's sweep reports finding (``RECONCILED``'s ``what``).
SWEEP_FINDS = {
    "intake": ("outboxes_finished",),
    "rules": ("case_without_decision",),
    "matching": ("case_without_matching_outcome",),
    "scheduling": ("outboxes_finished",),
    "notifications": ("outboxes_finished",),
}
CONSOLE_REQUESTS = Counter(
    "alongside_console_requests",
    "Requests the console answered, by kind (command, read, "
    "session, page) and status class (2xx, 3xx, 4xx, 5xx)",
    ["kind", "status"],
    registry=REGISTRY,
)
CONSOLE_KINDS = ("command", "read", "session", "page")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
COMMAND_OUTCOMES = ("accepted", "rejected", "failed")


def start_at_zero(service: str, orgs: Sequence[str] = ()) -> None:
    """Every label set of ``service``'s counters known before anything happens, at zero
    (``orgs``: those registered now), so a dashboard shows 0 rather than no data: a
    labelled counter has no series until its labels are first used."""
    answered = [c.type_name for c in catalogue.COMMANDS.values() if c.service == service]
    for command_type in [*answered, "unknown"] if answered else []:
        for outcome in COMMAND_OUTCOMES:
            COMMANDS.labels(service, command_type, outcome)
    if service in catalogue.CONSUMED_BY:
        REDELIVERIES.labels(service)
    for what in SWEEP_FINDS.get(service, ()):
        RECONCILED.labels(service, what)
    for org in orgs:
        DEAD_LETTERS.labels(org, service)
    if service == "console":
        for kind in CONSOLE_KINDS:
            for status in STATUS_CLASSES:
                CONSOLE_REQUESTS.labels(kind, status)


def subject_pattern(subject: str) -> str:
    """A subject as a label: organisation and id tokens out, message types kept only when
    they are ours. (FastStream labels by subject, which anyone allowed to publish could
    make unbounded: every organisation, made-up command names, every reply inbox.)"""
    tokens = subject.split(".")
    if tokens[0].startswith("_INBOX"):
        return "reply"
    if tokens[0] != subjects.PREFIX or len(tokens) < 4:
        return "other"
    kind = tokens[2]
    if kind == "cmd" and len(tokens) == 6:  # the sender is anyone's name: out too
        known = tokens[4] in catalogue.all_messages()
        return ".".join([subjects.PREFIX, "*", "cmd", tokens[3], tokens[4] if known else "*", "*"])
    if kind == "evt" or kind == "cmd":
        known = tokens[-1] in catalogue.all_messages()
        return ".".join([subjects.PREFIX, "*", *tokens[2:-1], tokens[-1] if known else "*"])
    return ".".join([subjects.PREFIX, "*", kind, "*"])


class _Provider(NatsMetricsSettingsProvider):
    def get_consume_attrs_from_message(self, msg: StreamMessage[Msg]) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs["destination_name"] = subject_pattern(attrs["destination_name"])
        return attrs

    def get_publish_destination_name_from_cmd(self, cmd: Any) -> str:
        return subject_pattern(super().get_publish_destination_name_from_cmd(cmd))


def _provider(msg: Msg | Sequence[Msg] | None) -> _Provider | None:
    return _Provider() if isinstance(msg, Msg) or msg is None else None


def faststream_middleware(service: str) -> Any:
    """FastStream's Prometheus middleware (received, processed, published, their sizes
    and times, per subscriber), labelled by subject pattern."""
    return PrometheusMiddleware(
        settings_provider_factory=_provider, registry=REGISTRY, app_name=service
    )
