"""What the notifications service reads to decide, and its dependencies.

It owns ``deliveries``, ``contacts``, ``links`` and ``channels``, and reads what others
own: people's contact details (intake's records, sealed with each person's key), their
schedules, the rules' decisions and the organisation's time zone. Contact details are read
when a message is sent, never kept: the latest address is used, and an erased person's
messages go nowhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from contracts.intake import Contact, PeerSupporter
from contracts.notifications import ChannelSettings, ContactPreferences, Person
from contracts.records import (
    CaseMatch,
    CaseRecord,
    CaseSchedule,
    Delivery,
    NotificationSettings,
    PersonalLink,
    PersonContact,
)
from runtime.clock import Clock
from runtime.settings import Settings
from runtime.state import CaseloadReader, DecisionReader, Policies, RecordReader
from runtime.store import RecordStore
from runtime.unit import EventPublisher, UnitOfWork
from runtime.vault import Erased
from services.notifications.transport import SmtpSender, WebhookSender
from services.notifications.waiting import Waiting

SETTINGS_KEY = "settings"


@dataclass(frozen=True)
class NotificationsDeps:
    deliveries: UnitOfWork[Delivery]
    contacts: UnitOfWork[PersonContact]
    links: UnitOfWork[PersonalLink]
    channels: UnitOfWork[NotificationSettings]
    records: RecordReader
    schedules: RecordStore[CaseSchedule]
    matches: RecordStore[CaseMatch]
    caseloads: CaseloadReader
    decisions: DecisionReader
    policies: Policies
    mail: SmtpSender
    webhook: WebhookSender
    events: EventPublisher
    secret: bytes  # signs personal links and one-time codes (``links.secret_of``)
    waiting: Waiting  # what waits, by when it is due (``waiting``)
    settings: Settings
    clock: Clock


@dataclass(frozen=True)
class Reachable:
    """A person's contact details as held now; ``erased`` when they are gone for good."""

    contact: Contact | None
    erased: bool = False


async def reachable(org: str, person: Person, deps: NotificationsDeps) -> Reachable:
    try:
        if person.kind == "supporter":
            assert person.supporter_id is not None
            found = await deps.records.supporter(org, person.supporter_id)
            return Reachable(found.profile.contact) if found else Reachable(None, erased=True)
        assert person.case_id is not None
        case = await deps.records.case(org, person.case_id)
    except Erased:
        return Reachable(None, erased=True)
    if case is None:
        return Reachable(None, erased=True)
    if person.kind == "client":
        return Reachable(case.intake.client.contact)
    party = next((p for p in case.intake.other_parties if p.party_id == person.party_id), None)
    return Reachable(party.contact if party else None)


async def preferences(org: str, person: Person, deps: NotificationsDeps) -> PersonContact | None:
    stored, _ = await deps.contacts.store.load(org, person.key)
    return stored.record if stored else None


async def preferences_of(org: str, person: Person, deps: NotificationsDeps) -> ContactPreferences:
    found = await preferences(org, person, deps)
    return found.preferences if found else ContactPreferences()


async def channels_of(org: str, deps: NotificationsDeps) -> ChannelSettings | None:
    stored, _ = await deps.channels.store.load(org, SETTINGS_KEY)
    return stored.record.settings if stored else None


async def zone_of(org: str, deps: NotificationsDeps) -> ZoneInfo:
    return ZoneInfo((await deps.policies.get(org)).time_zone)


def smtp_url(channels: ChannelSettings | None, settings: Settings) -> str | None:
    """The organisation's own mail server, else the deployment's."""
    return (channels.smtp_url if channels else None) or settings.smtp_url


def support_person_ref(case: CaseRecord) -> str | None:
    """Which support person consent is asked for, naming no one (a hash of a friend's
    contact details): a new support person is a new request."""
    person = case.support_person
    if person is None:
        return None
    if isinstance(person, PeerSupporter):
        return f"peer:{person.supporter_id}"
    contact = f"{person.contact.email}|{person.contact.phone}".encode()
    return f"{person.kind}:{hashlib.sha256(contact).hexdigest()[:16]}"
