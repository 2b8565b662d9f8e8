"""Wiring: the notifications service's dependencies from a live NATS connection."""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.client import Client
from nats.js.kv import KeyValue

from contracts.records import (
    CaseMatch,
    CaseSchedule,
    Delivery,
    NotificationSettings,
    PersonalLink,
    PersonContact,
    SchedulingSettings,
)
from runtime import topology
from runtime.clock import Clock
from runtime.settings import Settings
from runtime.state import CaseloadReader, DecisionReader, Policies, RecordReader
from runtime.store import RecordStore
from runtime.unit import EventPublisher, ReplyStore, UnitOfWork
from runtime.vault import Vault, load_master_key, sealer_of
from services.notifications.gathering import NotificationsDeps
from services.notifications.links import secret_of
from services.notifications.transport import SmtpSender, WebhookSender
from services.notifications.waiting import Waiting

SOURCE = "alongside/notifications"

BUCKETS = (
    topology.REPLIES_BUCKET,
    topology.DELIVERIES_BUCKET,
    topology.CONTACTS_BUCKET,
    topology.LINKS_BUCKET,
    topology.CHANNELS_BUCKET,
    topology.CASES_BUCKET,
    topology.SUPPORTERS_BUCKET,
    topology.SCHEDULES_BUCKET,
    topology.ORGANISATIONS_BUCKET,
    topology.DECISIONS_BUCKET,
    topology.MATCHES_BUCKET,
    topology.CASELOADS_BUCKET,
)


async def bootstrap(nc: Client, settings: Settings, clock: Clock) -> NotificationsDeps:
    """Bind to the buckets the topology provisioned (never declare them here) and wire."""
    js = nc.jetstream()
    buckets = {name: await js.key_value(name) for name in BUCKETS}
    master = load_master_key(settings.master_key_path)
    return wire(
        buckets,
        EventPublisher(js),
        Vault(js, master),
        secret_of(master),
        SmtpSender(),
        WebhookSender(),
        settings,
        clock,
    )


def wire(
    buckets: Mapping[str, KeyValue],
    events: EventPublisher,
    vault: Vault,
    secret: bytes,
    mail: SmtpSender,
    webhook: WebhookSender,
    settings: Settings,
    clock: Clock,
) -> NotificationsDeps:
    replies = ReplyStore(buckets[topology.REPLIES_BUCKET])

    return NotificationsDeps(
        deliveries=UnitOfWork(
            RecordStore(buckets[topology.DELIVERIES_BUCKET], Delivery),
            clock,
            SOURCE,
            replies,
            events,
        ),
        contacts=UnitOfWork(
            RecordStore(buckets[topology.CONTACTS_BUCKET], PersonContact),
            clock,
            SOURCE,
            replies,
            events,
        ),
        links=UnitOfWork(RecordStore(buckets[topology.LINKS_BUCKET], PersonalLink), clock, SOURCE),
        channels=UnitOfWork(
            RecordStore(buckets[topology.CHANNELS_BUCKET], NotificationSettings),
            clock,
            SOURCE,
            replies,
            events,
        ),
        records=RecordReader(
            buckets[topology.SUPPORTERS_BUCKET], buckets[topology.CASES_BUCKET], vault
        ),
        schedules=RecordStore(
            buckets[topology.SCHEDULES_BUCKET],
            CaseSchedule,
            sealer_of(vault, topology.SCHEDULES_BUCKET),
        ),
        matches=RecordStore(
            buckets[topology.MATCHES_BUCKET], CaseMatch, sealer_of(vault, topology.MATCHES_BUCKET)
        ),
        caseloads=CaseloadReader(buckets[topology.CASELOADS_BUCKET]),
        decisions=DecisionReader(buckets[topology.DECISIONS_BUCKET], vault),
        policies=Policies(RecordStore(buckets[topology.ORGANISATIONS_BUCKET], SchedulingSettings)),
        mail=mail,
        webhook=webhook,
        events=events,
        secret=secret,
        waiting=Waiting(),
        settings=settings,
        clock=clock,
    )
