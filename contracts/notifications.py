"""Notifications: what reaches people (email, or SMS and the like through one webhook), and
the personal links that let them act for themselves.

Events say that a message was sent, deferred, bounced, failed or withheld, and that a link
was used or revoked, by ids and kinds only: never an address, a name, the message's words
or a link's token. Why a message was withheld ("do not contact") is safety information, so
events name only the kind of reason (``withheld``), and the coordinator's page says the rest.
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from contracts.console import EMAIL_PATTERN
from contracts.envelope import Command, EntityId, Event, Message, Part
from contracts.privacy import PERSONAL, SENSITIVE

SERVICE = "notifications"

# A personal link's token, as the person's page got it from the URL: it opens their page, so
# it is handled like their contact details (never in an event or a log line).
Token = Annotated[
    str, PERSONAL, Field(pattern=r"^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$", max_length=66)
]


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"  # or any channel behind the organisation's webhook


class Person(Part):
    """Whom a message is for: a client (by their case), another party to a dispute (by case
    and party) or a supporter."""

    kind: Literal["client", "party", "supporter"]
    case_id: EntityId | None = None
    party_id: EntityId | None = None
    supporter_id: EntityId | None = None

    @model_validator(mode="after")
    def _ids_of_kind(self) -> Person:
        wanted = {
            "client": ("case_id",),
            "party": ("case_id", "party_id"),
            "supporter": ("supporter_id",),
        }[self.kind]
        for name in ("case_id", "party_id", "supporter_id"):
            given = getattr(self, name) is not None
            if given != (name in wanted):
                need = " and ".join(wanted)
                raise ValueError(f"a {self.kind} is named by {need} only")
        return self

    @property
    def key(self) -> str:
        """A KV key token (ids hold no ``=``): ``c=<case>``, ``p=<case>=<party>``, ``s=<id>``."""
        if self.kind == "client":
            return f"c={self.case_id}"
        if self.kind == "party":
            return f"p={self.case_id}={self.party_id}"
        return f"s={self.supporter_id}"


class Window(Part):
    """A daily window in the person's time zone; it may run past midnight (21:00 to 08:00)."""

    starts: time
    ends: time

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.starts == self.ends:
            raise ValueError("a window starts and ends at different times")
        return self


class ContactPreferences(Part):
    """How a person wants to hear from us, and the limits that keep contact safe."""

    channel: Channel = Channel.EMAIL
    # Messages wait until these hours end (never dropped).
    quiet_hours: Window | None = None
    # Only what they must hear: no reminders.
    essential_only: bool = False
    # Safe contact. "Do not contact" suppresses every message; otherwise contact may be
    # limited to one channel and one window (outside it, messages wait).
    do_not_contact: Annotated[bool, SENSITIVE] = False
    only_channel: Annotated[Channel | None, SENSITIVE] = None
    only_within: Annotated[Window | None, SENSITIVE] = None
    # Their own time zone (IANA), where it is not the organisation's.
    time_zone: str | None = Field(default=None, max_length=64)


class ChannelSettings(Part):
    """How an organisation reaches people. Email goes through the deployment's mail server
    unless ``smtp_url`` names the organisation's own; any other channel through one webhook,
    an Apprise URL (``json://``/``jsons://`` for a plain HTTPS POST, or a named SMS gateway)."""

    from_address: str = Field(pattern=EMAIL_PATTERN, max_length=200)
    # Shown as the sender: plain, never the scheme's name (a lock screen shows it).
    from_name: str = Field(default="Peer support", min_length=1, max_length=60)
    smtp_url: str | None = Field(default=None, max_length=500)
    webhook_url: str | None = Field(default=None, max_length=500)
    # Where people's pages are served (the console's address as people reach it).
    pages_url: str = Field(max_length=200, pattern=r"^https?://")
    # How long a personal link lasts.
    link_days: int = Field(default=14, ge=1, le=90)


# Commands ----------------------------------------------------------------


class ConfigureNotifications(Command):
    """Set how an organisation reaches people (the operator's or a coordinator's)."""

    type_name: ClassVar[str] = "ConfigureNotifications"
    service: ClassVar[str] = SERVICE
    settings: ChannelSettings


class SetContactPreferences(Command):
    """A person's (through their link) or a coordinator's choice of how they are contacted."""

    type_name: ClassVar[str] = "SetContactPreferences"
    service: ClassVar[str] = SERVICE
    person: Person
    preferences: ContactPreferences


class StopNonEssential(Command):
    """One click from an email (RFC 8058): nothing but what the person must hear."""

    type_name: ClassVar[str] = "StopNonEssential"
    service: ClassVar[str] = SERVICE
    token: Token


class RevokeLinks(Command):
    """Every open link of a person stops working at once (a lost phone, a shared inbox)."""

    type_name: ClassVar[str] = "RevokeLinks"
    service: ClassVar[str] = SERVICE
    person: Person


class OpenLink(Command):
    """A person opened their link (or acted through it): answered with ``LinkOpened``, what
    the link is for, or refused when it is unknown, expired or revoked. Every use is in the
    access log (``LinkUsed``)."""

    type_name: ClassVar[str] = "OpenLink"
    service: ClassVar[str] = SERVICE
    token: Token
    action: str = Field(default="view", pattern=r"^[a-z_]{1,40}$")


class SendCode(Command):
    """Send a one-time code to the contact the link was sent to, for an action that changes
    consent."""

    type_name: ClassVar[str] = "SendCode"
    service: ClassVar[str] = SERVICE
    token: Token


class CheckCode(Command):
    """Check (and use up) the one-time code the person typed."""

    type_name: ClassVar[str] = "CheckCode"
    service: ClassVar[str] = SERVICE
    token: Token
    code: str = Field(pattern=r"^[0-9]{6}$")


# Replies -----------------------------------------------------------------

Purpose = Literal["choose_supporter", "consent", "supporter_offer", "schedule", "preferences"]


class PageOffer(Part):
    """A supporter proposed to the client, as their page shows them: nothing sensitive
    (no lived experience, no background, no vetting), the first name and how they work."""

    supporter_id: EntityId
    first_name: Annotated[str, PERSONAL]
    languages: list[str]
    methods: list[str]
    matched_on: list[str]  # which of the client's wishes they meet, by field name
    held_until: datetime


class PageSession(Part):
    """A meeting or session on a person's page (``with_name``: the other side's first name)."""

    case_id: EntityId
    session_id: EntityId
    kind: str
    start: datetime
    end: datetime
    method: str
    status: str
    confirmed: bool  # by this person (the first meeting)
    with_name: Annotated[str | None, PERSONAL] = None


class PageConsent(Part):
    """What a party is asked to consent to: a support person (by kind, never by name) for
    the dispute's stages, and where their answer stands."""

    party_id: EntityId
    support_person: Literal["peer", "family", "friend"] | None
    stage: str  # the dispute's stage now
    status: Literal["given", "withdrawn", "missing"]
    stages: list[str]  # those their consent covers
    active: bool  # every party has consented for the stage


class PageClient(Part):
    """A client offered to a supporter: the first name and how they would meet; nothing of
    the dispute, their safety or their wishes beyond that."""

    case_id: EntityId
    first_name: Annotated[str, PERSONAL]
    languages: list[str]
    methods: list[str]
    region: str
    status: str  # the match: accepted (waiting for consent), active, ended ...
    supporter_accepted: bool


class LinkOpened(Message):
    """What an open link is bound to (one person, one case or supporter, one purpose), and
    what its page shows now."""

    type_name: ClassVar[str] = "LinkOpened"
    status: Literal["opened"] = "opened"
    command_id: str
    link_ref: str
    person: Person
    case_id: EntityId | None
    purpose: Purpose
    expires_at: datetime
    time_zone: str
    first_name: Annotated[str | None, PERSONAL] = None  # the person's own
    match_status: str | None = None
    offers: list[PageOffer] = Field(default_factory=list)
    chosen_id: EntityId | None = None
    chosen_name: Annotated[str | None, PERSONAL] = None  # the chosen supporter's first name
    consent: PageConsent | None = None
    offered: PageClient | None = None
    sessions: list[PageSession] = Field(default_factory=list)
    preferences: ContactPreferences = ContactPreferences()
    # A coordinator set limits for the person's safety: the person may tighten them, never
    # lift them (whoever holds the link may not be the person).
    safety_locked: Annotated[bool, SENSITIVE] = False
    # A one-time code was checked within the last minutes: an action on consent may go ahead.
    code_checked: bool = False


# Events ------------------------------------------------------------------

Withheld = Literal[
    "do_not_contact",  # safe contact: nothing is sent
    "no_contact",  # no address or number for the channel
    "no_consent_to_contact",
    "not_essential",  # they asked for what is essential only
    "no_channel",  # the organisation has not set up this channel
    "person_erased",
]


class NotificationSent(Event):
    type_name: ClassVar[str] = "NotificationSent"
    message_id: EntityId
    person: Person
    about: str  # the kind of message: proposals_ready, session_moved ...
    channel: Channel
    attempt: int


class NotificationDeferred(Event):
    """Not sent yet: it waits for the person's hours, or for the channel to answer."""

    type_name: ClassVar[str] = "NotificationDeferred"
    message_id: EntityId
    person: Person
    about: str  # the kind of message: proposals_ready, session_moved ...
    until: datetime
    because: Literal["quiet_hours", "contact_window", "channel_unavailable"]


class NotificationBounced(Event):
    """The mail server refused the address for good; it is not tried again."""

    type_name: ClassVar[str] = "NotificationBounced"
    message_id: EntityId
    person: Person
    about: str  # the kind of message: proposals_ready, session_moved ...
    channel: Channel


class NotificationFailed(Event):
    """Tried as often as the settings allow, and given up; the coordinator sees it."""

    type_name: ClassVar[str] = "NotificationFailed"
    message_id: EntityId
    person: Person
    about: str  # the kind of message: proposals_ready, session_moved ...
    channel: Channel
    attempts: int


class NotificationWithheld(Event):
    """Not sent, and not to be: why, by the kind of reason."""

    type_name: ClassVar[str] = "NotificationWithheld"
    message_id: EntityId
    person: Person
    about: str  # the kind of message: proposals_ready, session_moved ...
    because: Withheld


class ContactPreferencesSet(Event):
    type_name: ClassVar[str] = "ContactPreferencesSet"
    person: Person
    by: Literal["person", "coordinator"]


class NotificationsConfigured(Event):
    type_name: ClassVar[str] = "NotificationsConfigured"
    by_mail: bool  # its own mail server (else the deployment's)
    by_webhook: bool


class LinkUsed(Event):
    """The access log of people's pages: which link (its public reference), for what."""

    type_name: ClassVar[str] = "LinkUsed"
    link_ref: str
    person: Person
    purpose: Purpose
    action: str


class LinksRevoked(Event):
    type_name: ClassVar[str] = "LinksRevoked"
    person: Person
    links: int


COMMANDS: tuple[type[Command], ...] = (
    ConfigureNotifications,
    SetContactPreferences,
    StopNonEssential,
    RevokeLinks,
    OpenLink,
    SendCode,
    CheckCode,
)
EVENTS: tuple[type[Event], ...] = (
    NotificationSent,
    NotificationDeferred,
    NotificationBounced,
    NotificationFailed,
    NotificationWithheld,
    ContactPreferencesSet,
    NotificationsConfigured,
    LinkUsed,
    LinksRevoked,
)
