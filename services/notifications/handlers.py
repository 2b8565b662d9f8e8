"""Notifications' handlers: an event about a person in, their message decided and sent.

Each event handler reads what the event is about as it is stored now (the schedule, the
consent decision, the case), makes its plans (``plans``), and delivers each (``sending``):
kept once under an id derived from its cause, then attempted. The commands set how an
organisation reaches people and how each person wants to be reached; those of personal
links are in ``link_commands``.
"""

from __future__ import annotations

from collections.abc import Callable

from contracts.intake import ClientErased, ConsentGiven, ConsentWithdrawn, SupporterErased
from contracts.matching import (
    ClientWaitlisted,
    MatchProposed,
    ProposalAccepted,
    ProposalsWithdrawn,
)
from contracts.notifications import (
    SERVICE,
    ConfigureNotifications,
    ContactPreferences,
    ContactPreferencesSet,
    LinksRevoked,
    NotificationsConfigured,
    RevokeLinks,
    SetContactPreferences,
)
from contracts.records import NotificationSettings, PersonalLink, PersonContact
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import ConsentDecided, Kind, SupporterEligibilityDecided
from contracts.scheduling import (
    InitialMeetingProposed,
    SessionBooked,
    SessionCancelled,
    SessionReminderDue,
    SessionRescheduled,
    SupervisionScheduled,
)
from runtime import topology
from runtime.changes import Change, NotYet, Removal
from runtime.dispatch import Handlers, Meta, Received
from runtime.unit import answered
from services.notifications import plans
from services.notifications.gathering import (
    SETTINGS_KEY,
    NotificationsDeps,
    preferences,
    support_person_ref,
)
from services.notifications.sending import deliver

Reply = CommandAccepted | CommandRejected

handlers: Handlers[NotificationsDeps] = Handlers(SERVICE)


async def deliver_all(org: str, planned: list[plans.Plan], deps: NotificationsDeps) -> None:
    for plan in planned:
        await deliver(org, plan, deps)


# Matching -------------------------------------------------------------------------------


@handlers.on(MatchProposed)
async def on_match_proposed(event: MatchProposed, meta: Meta, deps: NotificationsDeps) -> None:
    person = plans.client(event.case_id)
    kept = await preferences(meta.org, person, deps)
    waited = kept is not None and kept.waitlisted
    await deliver_all(meta.org, plans.proposals(event, meta.envelope.id, waited), deps)
    if waited:
        await _mark_waitlisted(meta.org, person.key, False, deps)


@handlers.on(ClientWaitlisted)
async def on_client_waitlisted(
    event: ClientWaitlisted, meta: Meta, deps: NotificationsDeps
) -> None:
    """Nothing is sent (a coordinator tells a client they wait); their next proposals are
    told as "a place was found"."""
    await _mark_waitlisted(meta.org, plans.client(event.case_id).key, True, deps)


async def _mark_waitlisted(org: str, key: str, waitlisted: bool, deps: NotificationsDeps) -> None:
    now = deps.clock()

    def mark(current: PersonContact | None, _: None) -> Change[PersonContact] | None:
        record = current or PersonContact(person_key=key, updated_at=now)
        if current is not None and current.waitlisted == waitlisted:
            return None
        return Change(record.model_copy(update={"waitlisted": waitlisted, "updated_at": now}))

    await deps.contacts.change(org, key, mark)


@handlers.on(ProposalsWithdrawn)
async def on_proposals_withdrawn(
    event: ProposalsWithdrawn, meta: Meta, deps: NotificationsDeps
) -> None:
    await deliver_all(meta.org, plans.withdrawn(event, meta.envelope.id), deps)


@handlers.on(ProposalAccepted)
async def on_proposal_accepted(
    event: ProposalAccepted, meta: Meta, deps: NotificationsDeps
) -> None:
    await deliver_all(meta.org, plans.offered(event, meta.envelope.id), deps)


# Consent --------------------------------------------------------------------------------


@handlers.on(ConsentDecided)
async def on_consent_decided(event: ConsentDecided, meta: Meta, deps: NotificationsDeps) -> None:
    """Each party whose consent is missing is asked, once per support person and stage,
    while the decision stored says consent is pending."""
    decision = await deps.decisions.announced(
        meta.org, Kind.CONSENT, event.case_id, meta.envelope.time
    )
    if decision.outcome != "pending" or event.status != "pending":
        return
    case = await deps.records.case(meta.org, event.case_id)
    if case is None:
        return
    ref = support_person_ref(case)
    if ref is None:
        return  # consent is to a named support person: none yet
    missing = [p for p in event.missing_party_ids if p in case.party_ids]
    planned = plans.consent_requested(event.case_id, event.stage, missing, ref, meta.envelope.id)
    await deliver_all(meta.org, planned, deps)


@handlers.on(ConsentGiven)
async def on_consent_given(event: ConsentGiven, meta: Meta, deps: NotificationsDeps) -> None:
    planned = plans.consent_recorded(event.case_id, event.party_id, True, meta.envelope.id)
    await deliver_all(meta.org, planned, deps)


@handlers.on(ConsentWithdrawn)
async def on_consent_withdrawn(
    event: ConsentWithdrawn, meta: Meta, deps: NotificationsDeps
) -> None:
    planned = plans.consent_recorded(event.case_id, event.party_id, False, meta.envelope.id)
    await deliver_all(meta.org, planned, deps)


# Scheduling -----------------------------------------------------------------------------


async def on_session_news(event: plans.SessionEvent, meta: Meta, deps: NotificationsDeps) -> None:
    """The meeting as the schedule holds it now (an event ahead of its record waits)."""
    stored, _ = await deps.schedules.load(meta.org, event.case_id)
    if stored is None:
        raise NotYet(f"no schedule for {event.case_id} yet")
    planned = plans.session_news(event, stored.record, meta.envelope.id, meta.envelope.time)
    await deliver_all(meta.org, planned, deps)


@handlers.on(InitialMeetingProposed)
async def on_initial_meeting_proposed(
    event: InitialMeetingProposed, meta: Meta, deps: NotificationsDeps
) -> None:
    await on_session_news(event, meta, deps)


@handlers.on(SessionBooked)
async def on_session_booked(event: SessionBooked, meta: Meta, deps: NotificationsDeps) -> None:
    await on_session_news(event, meta, deps)


@handlers.on(SessionRescheduled)
async def on_session_rescheduled(
    event: SessionRescheduled, meta: Meta, deps: NotificationsDeps
) -> None:
    await on_session_news(event, meta, deps)


@handlers.on(SessionCancelled)
async def on_session_cancelled(
    event: SessionCancelled, meta: Meta, deps: NotificationsDeps
) -> None:
    await on_session_news(event, meta, deps)


@handlers.on(SessionReminderDue)
async def on_session_reminder_due(
    event: SessionReminderDue, meta: Meta, deps: NotificationsDeps
) -> None:
    await on_session_news(event, meta, deps)


@handlers.on(SupervisionScheduled)
async def on_supervision_scheduled(
    event: SupervisionScheduled, meta: Meta, deps: NotificationsDeps
) -> None:
    planned = plans.supervision(event, meta.envelope.id, meta.envelope.time)
    await deliver_all(meta.org, planned, deps)


@handlers.on(SupporterEligibilityDecided)
async def on_supporter_eligibility_decided(
    event: SupporterEligibilityDecided, meta: Meta, deps: NotificationsDeps
) -> None:
    """A check that runs out soon: the supporter is told once per date it lapses."""
    decision = await deps.decisions.announced(
        meta.org, Kind.ELIGIBILITY, event.supporter_id, meta.envelope.time
    )
    if decision.lapses_on is None:
        return
    today = await deps.policies.today(meta.org, deps.clock())
    planned = plans.check_lapsing(
        event.supporter_id, decision.lapses_on, today, deps.settings.check_lapsing_days
    )
    await deliver_all(meta.org, planned, deps)


# Erasure --------------------------------------------------------------------------------


@handlers.on(ClientErased)
async def on_client_erased(event: ClientErased, meta: Meta, deps: NotificationsDeps) -> None:
    """Their preferences and open links go; their waiting messages find no one to reach."""
    case_id = event.case_id
    await _forget_people(meta.org, lambda key: key.split("=")[1:2] == [case_id], deps)


@handlers.on(SupporterErased)
async def on_supporter_erased(event: SupporterErased, meta: Meta, deps: NotificationsDeps) -> None:
    key = plans.supporter(event.supporter_id).key
    await _forget_people(meta.org, lambda found: found == key, deps)


async def _forget_people(org: str, whose: Callable[[str], bool], deps: NotificationsDeps) -> None:
    for _, key, _, _ in await deps.contacts.store.each(org):
        if whose(key):
            await deps.contacts.change(
                org, key, lambda current, _: Removal([]) if current else None
            )
    for _, token_hash, stored, _ in await deps.links.store.each(topology.LINKS_SCOPE):
        if stored.record.org == org and whose(stored.record.person_key):
            await deps.links.store.remove(topology.LINKS_SCOPE, token_hash)


# Commands -------------------------------------------------------------------------------


@handlers.on(ConfigureNotifications)
async def configure_notifications(
    command: ConfigureNotifications, received: Received, deps: NotificationsDeps
) -> Reply:
    now = deps.clock()
    settings = command.settings
    configured = NotificationsConfigured(
        by_mail=settings.smtp_url is not None, by_webhook=settings.webhook_url is not None
    )

    def configure(current: NotificationSettings | None, _: None) -> Change[NotificationSettings]:
        return Change(NotificationSettings(settings=settings, updated_at=now), [configured])

    outcome = await deps.channels.change(received.org, SETTINGS_KEY, configure, command=received)
    return answered(outcome.reply)


@handlers.on(SetContactPreferences)
async def set_contact_preferences(
    command: SetContactPreferences, received: Received, deps: NotificationsDeps
) -> Reply:
    now = deps.clock()
    key = command.person.key
    by = "person" if received.envelope.source.startswith(PERSON_SOURCE) else "coordinator"
    chosen = ContactPreferencesSet(person=command.person, by=by)

    def choose(current: PersonContact | None, _: None) -> Change[PersonContact]:
        record = current or PersonContact(person_key=key, updated_at=now)
        wishes, locked = safe(record, command.preferences, by)
        changed = record.model_copy(
            update={
                "preferences": wishes,
                "set_by": by,
                "safety_by_coordinator": locked,
                "updated_at": now,
            }
        )
        return Change(changed, [chosen])

    outcome = await deps.contacts.change(received.org, key, choose, command=received)
    return answered(outcome.reply)


def safe(
    record: PersonContact, wished: ContactPreferences, by: str
) -> tuple[ContactPreferences, bool]:
    """The preferences to keep, and whether a coordinator's safety limits stand. A person
    may add a limit but not lift one a coordinator set: whoever holds a link may not be the
    person (a shared phone)."""
    if by == "coordinator":
        limited = wished.do_not_contact or wished.only_channel or wished.only_within
        return wished, bool(limited)
    if not record.safety_by_coordinator:
        return wished, False
    kept = record.preferences
    return (
        wished.model_copy(
            update={
                "do_not_contact": kept.do_not_contact or wished.do_not_contact,
                "only_channel": kept.only_channel,
                "only_within": kept.only_within,
            }
        ),
        True,
    )


# What the console says when a person acts through their own link (``alongside/console/
# person/<purpose>``), as opposed to a coordinator signed in.
PERSON_SOURCE = "alongside/console/person"


@handlers.on(RevokeLinks)
async def revoke_links(command: RevokeLinks, received: Received, deps: NotificationsDeps) -> Reply:
    """Every open link of the person stops working at once; the count is announced."""
    org, key = received.org, command.person.key
    revoked = 0
    for _, token_hash, stored, _ in await deps.links.store.each(topology.LINKS_SCOPE):
        link = stored.record
        if link.org != org or link.person_key != key or link.revoked:
            continue

        def revoke(current: PersonalLink | None, _: None) -> Change[PersonalLink] | None:
            if current is None or current.revoked:
                return None
            return Change(current.model_copy(update={"revoked": True}))

        if (await deps.links.change(topology.LINKS_SCOPE, token_hash, revoke)).committed:
            revoked += 1
    announced = LinksRevoked(person=command.person, links=revoked)

    def record(current: PersonContact | None, _: None) -> Change[PersonContact]:
        kept = current or PersonContact(person_key=key, updated_at=deps.clock())
        return Change(kept.model_copy(update={"updated_at": deps.clock()}), [announced])

    outcome = await deps.contacts.change(org, key, record, command=received)
    return answered(outcome.reply)
