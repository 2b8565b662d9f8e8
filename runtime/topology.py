"""The one place where streams and KV buckets are declared.

``alongside up`` (or ``alongside provision`` in the clustered deployment)
calls ``provision``; services only bind to what exists (FastStream subscribers
use ``declare=False``), so starting a service never rewrites a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)
from nats.js.errors import NotFoundError

from contracts import catalogue, subjects
from contracts.envelope import MAX_EVENT_BYTES
from contracts.replies import DeadLetter
from runtime.logging import get_logger
from runtime.settings import Settings

log = get_logger(__name__)

EVENTS_STREAM = "EVENTS"
DEADLETTER_STREAM = "DEADLETTERS"
DECISION_LOG_STREAM = "DECISIONLOG"
KEYS_STREAM = "KEYS"

SUPPORTERS_BUCKET = "supporters"
CASES_BUCKET = "cases"
REPLIES_BUCKET = "command_replies"
RULES_BUCKET = "rules"
DECISIONS_BUCKET = "decisions"
MATCHES_BUCKET = "matches"
CASELOADS_BUCKET = "caseloads"
SCHEDULES_BUCKET = "schedules"
SUPERVISION_BUCKET = "supervision"
GROUPS_BUCKET = "groups"
ORGANISATIONS_BUCKET = "organisations"
REGISTRY_BUCKET = "registry"
CREDENTIALS_BUCKET = "credentials"
CONSOLE_ACCOUNTS_BUCKET = "console_accounts"
CONSOLE_SESSIONS_BUCKET = "console_sessions"
DELIVERIES_BUCKET = "deliveries"
CONTACTS_BUCKET = "contacts"
LINKS_BUCKET = "links"
CHANNELS_BUCKET = "channels"
# Personal links are keyed by their hash alone (a page knows no organisation until it reads
# the link): ``_links.<hash>``, where ``_links`` can be no organisation's name.
LINKS_SCOPE = "_links"
LINK_LASTS_AT_MOST_S = 90 * 24 * 3600.0
# What was sent to whom, and how it went, is kept this long (the person's console page).
DELIVERIES_KEPT_S = 400 * 24 * 3600.0
# A console session ends this long after signing in, whatever happens (a working day); the
# bucket forgets a session this long after its last write.
CONSOLE_SESSION_LASTS_S = 8 * 3600.0

DAY_S = 24 * 3600.0
# No record may outgrow this; the commands that grow records are bounded well below it.
MAX_RECORD_BYTES = 256 * 1024


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer, declared in the topology, bound to by a service."""

    service: str
    durable: str
    stream: str
    filter_subjects: tuple[str, ...]

    def config(self, settings: Settings) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subjects=list(self.filter_subjects),
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=settings.max_deliver,
            ack_wait=settings.ack_wait_s,
        )


@dataclass(frozen=True)
class Topology:
    streams: tuple[StreamConfig, ...]
    buckets: tuple[KeyValueConfig, ...]
    consumers: tuple[ConsumerSpec, ...] = ()


def _consumer_of(service: str) -> ConsumerSpec:
    """A service's durable consumer on EVENTS: every organisation's events of the types it
    handles (``catalogue.CONSUMED_BY``)."""
    return ConsumerSpec(
        service=service,
        durable=service,
        stream=EVENTS_STREAM,
        filter_subjects=tuple(
            subjects.events("*", event.type_name) for event in catalogue.CONSUMED_BY[service]
        ),
    )


RULES_CONSUMER = _consumer_of("rules")
MATCHING_CONSUMER = _consumer_of("matching")
SCHEDULING_CONSUMER = _consumer_of("scheduling")
NOTIFICATIONS_CONSUMER = _consumer_of("notifications")


CONSUMERS = (RULES_CONSUMER, MATCHING_CONSUMER, SCHEDULING_CONSUMER, NOTIFICATIONS_CONSUMER)


def topology(settings: Settings) -> Topology:
    replicas = settings.replicas

    def bucket(
        name: str, description: str, history: int, ttl: float | None = None
    ) -> KeyValueConfig:
        return KeyValueConfig(
            bucket=name,
            description=description,
            history=history,
            ttl=ttl,
            storage=StorageType.FILE,
            replicas=replicas,
            max_value_size=MAX_RECORD_BYTES,
        )

    def stream(**config: Any) -> StreamConfig:
        """A stream on file with the deployment's replicas, kept by its limits."""
        return StreamConfig(
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=replicas,
            **config,
        )

    return Topology(
        streams=(
            stream(
                name=EVENTS_STREAM,
                description="Domain events of every organisation: the system of record. "
                "Also holds message schedules (reminders), which the server turns into events.",
                subjects=[subjects.events("*"), subjects.schedules("*")],
                allow_msg_schedules=True,
                duplicate_window=settings.duplicate_window_s,
                # The system of record: bounded per message, and as a whole by the server's
                # store limit (max_file_store), past which a publish fails and the command is
                # answered with an error; never by forgetting old events. (Message schedules
                # rule out discard-new, and discard-old would forget them.)
                max_msg_size=MAX_EVENT_BYTES,
                discard=DiscardPolicy.OLD,
            ),
            stream(
                name=DECISION_LOG_STREAM,
                description="Every rules decision with why (fired rules and reasons), for "
                "operators only; each kept for its organisation's audit period.",
                subjects=[subjects.decision_logs()],
                # Each entry expires on its own (Nats-TTL): organisations keep theirs for
                # different periods. An audit log never drops entries to make room: a full
                # store fails the publish, and the decision with it, visibly.
                allow_msg_ttl=True,
                discard=DiscardPolicy.NEW,
                duplicate_window=120.0,
            ),
            stream(
                name=KEYS_STREAM,
                description="Each person's data key, wrapped under its organisation's key; "
                "erasing a person erases their key (runtime/vault.py).",
                subjects=[subjects.person_keys()],
                # One key per person, made once; read by subject. Not a KV bucket: a KV
                # stream denies deleting a message, and deleting is how a key is erased
                # (JetStream overwrites a deleted message's bytes on disk).
                max_msgs_per_subject=1,
                allow_direct=True,
                deny_delete=False,
                discard=DiscardPolicy.NEW,
            ),
            stream(
                name=DEADLETTER_STREAM,
                description="Messages a service could not process, with the reason.",
                subjects=[subjects.dead_letters("*")],
                max_age=settings.deadletters_days * DAY_S,
                max_msg_size=4 * DeadLetter.ORIGINAL_KEPT,  # escaped or base64, with headers
                max_bytes=settings.deadletters_max_bytes,
                # Each subject (alongside.<org>.dlq.<service>.<sender>) bounded on its own: one
                # organisation's flood drops its own oldest letters, not another's.
                max_msgs_per_subject=settings.deadletters_per_subject,
                discard=DiscardPolicy.OLD,
                duplicate_window=120.0,
            ),
        ),
        buckets=(
            bucket(SUPPORTERS_BUCKET, "Current supporter records, key <org>.<supporter_id>.", 5),
            bucket(CASES_BUCKET, "Current case records, key <org>.<case_id>.", 5),
            bucket(RULES_BUCKET, "Published rulesets, key <org>.<kind>; history: rollbacks.", 64),
            bucket(DECISIONS_BUCKET, "Latest rules decision, key <org>.<kind>.<subject_id>.", 10),
            bucket(MATCHES_BUCKET, "Matching state of each case, key <org>.<case_id>.", 5),
            bucket(CASELOADS_BUCKET, "Who holds each supporter's slots, <org>.<supporter_id>.", 5),
            bucket(SCHEDULES_BUCKET, "Each case's meetings and sessions, <org>.<case_id>.", 5),
            bucket(SUPERVISION_BUCKET, "Supervision per supporter, <org>.<supporter_id>.", 5),
            bucket(GROUPS_BUCKET, "Group sessions, <org>.<group_id>.", 5),
            bucket(ORGANISATIONS_BUCKET, "Each organisation's scheduling settings, <org>.", 10),
            bucket(REGISTRY_BUCKET, "The organisations registered here, key <org>.", 10),
            bucket(
                CREDENTIALS_BUCKET,
                "Organisations' credentials (public keys, revocations), "
                "key <org>.<name>; operators only.",
                10,
            ),
            bucket(
                CONSOLE_ACCOUNTS_BUCKET,
                "Who may sign in to the console (password hashes, roles by organisation), "
                "key <account_id>; the console and operators only.",
                10,
            ),
            bucket(
                CONSOLE_SESSIONS_BUCKET,
                "Console sessions: only a hash of each session's secret, when it began, was "
                "last used and ends; key <account_id>.<hash>; the console and operators only.",
                1,
                ttl=CONSOLE_SESSION_LASTS_S,
            ),
            bucket(
                DELIVERIES_BUCKET,
                "Each message to a person and how it went (no address, no words), "
                "key <org>.<message_id>.",
                1,
                ttl=DELIVERIES_KEPT_S,
            ),
            bucket(CONTACTS_BUCKET, "Contact preferences, key <org>.<person key>.", 5),
            bucket(
                LINKS_BUCKET,
                "Personal links: only a hash of each token, bound to one person and purpose; "
                "key _links.<hash>.",
                1,
                ttl=LINK_LASTS_AT_MOST_S,
            ),
            bucket(CHANNELS_BUCKET, "How each organisation reaches people, key <org>.", 10),
            bucket(
                REPLIES_BUCKET,
                "Replies to accepted commands, key <org>.<command_id>.",
                1,
                ttl=settings.reply_ttl_s,
            ),
        ),
        consumers=CONSUMERS,
    )


async def provision(js: JetStreamContext, settings: Settings) -> None:
    """Create, or bring up to date, every stream and bucket. Safe to run again."""
    topo = topology(settings)
    for config in topo.streams:
        assert config.name is not None
        try:
            await js.stream_info(config.name)
            await js.update_stream(config)
            log.info("stream_updated", stream=config.name)
        except NotFoundError:
            await js.add_stream(config)
            log.info("stream_created", stream=config.name)
    for kv in topo.buckets:
        # create_key_value also updates the bucket's stream when it exists.
        await js.create_key_value(kv)
        log.info("bucket_ready", bucket=kv.bucket)
    for spec in topo.consumers:
        await provision_consumer(js, spec, settings)


def org_events(org: str, settings: Settings) -> StreamConfig:
    """An organisation's events, sourced from ``EVENTS``: what its own subscribers read, so
    that a credential can be confined to one organisation by the stream's name (every
    JetStream request names its stream; none names a filter NATS could check on a read).
    It has no subjects of its own, so no one can publish into it."""
    return StreamConfig(
        name=subjects.org_events_stream(org),
        description=f"The events of {org}, for its own subscribers (sourced from EVENTS).",
        sources=[StreamSource(name=EVENTS_STREAM, filter_subject=subjects.events(org))],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        max_msg_size=MAX_EVENT_BYTES,
        discard=DiscardPolicy.OLD,
    )


async def provision_org(js: JetStreamContext, org: str, settings: Settings) -> None:
    """Create, or bring up to date, an organisation's own stream. Safe to run again."""
    config = org_events(org, settings)
    try:
        await js.stream_info(subjects.org_events_stream(org))
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)
        log.info("stream_created", stream=config.name)


async def provision_consumer(js: JetStreamContext, spec: ConsumerSpec, settings: Settings) -> None:
    await js.add_consumer(spec.stream, spec.config(settings))
    log.info("consumer_ready", stream=spec.stream, durable=spec.durable)
