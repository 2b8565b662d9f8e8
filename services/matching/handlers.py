"""Matching's handlers: a client's policy in, explained proposals out; the client's choices.

Every handler gathers what its decision needs (the client and their policy, consent) and
reserves what it must before committing: new proposals first *hold* their supporters'
slots, by compare-and-set on each caseload, refused when every slot is taken, so no
replica ever proposes a supporter beyond their free slots. Then a pure decision
(``decisions``) is committed with its outbox by the unit of work (``runtime.unit``), only
on the state it was gathered for: if the case moved on meanwhile, what was reserved goes
back and it is gathered again (``offering``). Many clients at once, an import's batch or
the waitlist, are offered places together (``batch_offers``); free places are taken in
turn, the waiting first (``waitlist``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from contracts.intake import (
    ClientErased,
    NameSupportPerson,
    PeerSupporter,
    SupporterErased,
    SupporterRegistered,
    SupporterUpdated,
)
from contracts.matching import (
    SERVICE,
    AcceptClient,
    AcceptProposal,
    AssignBatch,
    BatchAssigned,
    ChangeSupporter,
    ClientWaitlisted,
    DeclineClient,
    DeclineProposals,
    MatchEnded,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    RefuseService,
    ResumeMatch,
    ServiceRefused,
)
from contracts.records import CaseMatch
from contracts.replies import CommandRejected, FieldError
from contracts.rules import (
    ConsentDecided,
    Kind,
    MatchingPolicyDecided,
    SupporterEligibilityDecided,
    fit_to_support,
)
from contracts.scheduling import ServiceEnded
from runtime.changes import Change, Refused, on_record
from runtime.commands import rejected
from runtime.dispatch import Handlers, Meta, Received
from runtime.logging import get_logger
from runtime.unit import answered
from services.matching import answers, decisions
from services.matching.adapters import match_records
from services.matching.batch_offers import offer_together
from services.matching.decisions import Client, Offered
from services.matching.deps import MatchingDeps
from services.matching.offering import (
    Reply,
    client_of,
    consented,
    hold,
    nothing,
    offer,
    on_case,
    unfit,
)
from services.matching.turns import FIRST
from services.matching.waitlist import first_offer, retry_waitlist, serve_the_waiting

log = get_logger(__name__)

SOURCE = f"alongside/{SERVICE}"
_NAMESPACE = uuid.UUID("2b6e0c8e-55a4-4d5e-9f0e-7a41c3d9b812")

handlers: Handlers[MatchingDeps] = Handlers(SERVICE)


# Reacting to events -----------------------------------------------------------------------


@handlers.on(MatchingPolicyDecided)
async def on_matching_policy_decided(
    event: MatchingPolicyDecided, meta: Meta, deps: MatchingDeps
) -> None:
    await first_offer(meta.org, event.case_id, deps, announced_at=meta.envelope.time)


@handlers.on(ConsentDecided)
async def on_consent_decided(event: ConsentDecided, meta: Meta, deps: MatchingDeps) -> None:
    if event.status != "active":
        # Only active consent starts a match; a decision that becomes active later is
        # announced by an event of its own. (Every new case's first decision is pending.)
        return
    org, now = meta.org, deps.clock()
    decision = await deps.decisions.announced(org, Kind.CONSENT, event.case_id, meta.envelope.time)
    if decision.outcome != "active":
        return

    async def gather(seen: CaseMatch | None) -> tuple[tuple[bool, bool], list[str]]:
        if seen is None or seen.status != "accepted" or seen.supporter_id is None:
            return (False, False), []
        agreed = await consented(org, seen.case_id, seen.supporter_id, deps)
        return (agreed, not await unfit(org, seen.supporter_id, deps)), []

    await on_case(
        org, event.case_id, deps, gather, lambda m, got: decisions.activate(m, got[0], got[1], now)
    )


@handlers.on(ServiceEnded)
async def on_service_ended(event: ServiceEnded, meta: Meta, deps: MatchingDeps) -> None:
    await matched(meta.org, event.case_id, deps)
    await on_case(
        meta.org,
        event.case_id,
        deps,
        nothing,
        lambda m, _: decisions.complete(m, event.supporter_id),
    )


@handlers.on(ClientErased)
async def on_client_erased(event: ClientErased, meta: Meta, deps: MatchingDeps) -> None:
    stored, _ = await deps.matches.load(meta.org, event.case_id)
    held = decisions.holding(stored.record if stored else None)
    now = deps.clock()
    await on_case(meta.org, event.case_id, deps, nothing, lambda m, _: decisions.erase(m, now))
    await supporters_changed(meta.org, sorted(held), deps)


@handlers.on(SupporterErased)
async def on_supporter_erased(event: SupporterErased, meta: Meta, deps: MatchingDeps) -> None:
    deps.supporters.forget(meta.org, event.supporter_id)


@handlers.on(SupporterRegistered)
async def on_supporter_registered(
    event: SupporterRegistered, meta: Meta, deps: MatchingDeps
) -> None:
    on_record(await deps.records.supporter(meta.org, event.supporter_id), "such supporter")
    await supporters_changed(meta.org, [event.supporter_id], deps)


@handlers.on(SupporterUpdated)
async def on_supporter_updated(event: SupporterUpdated, meta: Meta, deps: MatchingDeps) -> None:
    on_record(await deps.records.supporter(meta.org, event.supporter_id), "such supporter")
    await supporters_changed(meta.org, [event.supporter_id], deps)


@handlers.on(SupporterEligibilityDecided)
async def on_supporter_eligibility_decided(
    event: SupporterEligibilityDecided, meta: Meta, deps: MatchingDeps
) -> None:
    org, supporter_id = meta.org, event.supporter_id
    decision = await deps.decisions.announced(
        org, Kind.ELIGIBILITY, supporter_id, meta.envelope.time
    )
    await supporters_changed(org, [supporter_id], deps)
    if not fit_to_support(decision):
        await no_longer_fit(org, supporter_id, deps)


async def no_longer_fit(org: str, supporter_id: str, deps: MatchingDeps) -> None:
    """A supporter who may no longer be bound to anyone: taken out of every open proposal
    (each client offered someone else in their place, or waitlisted with why), and every
    match they are in paused for a coordinator's review. The cases are those holding one of
    their slots."""
    caseload, _ = await deps.caseloads.load(org, supporter_id)
    for case_id in sorted(caseload.holds if caseload else ()):
        await withdraw_or_pause(org, case_id, supporter_id, deps)


async def withdraw_or_pause(org: str, case_id: str, supporter_id: str, deps: MatchingDeps) -> None:
    now = deps.clock()

    async def gather(seen: CaseMatch | None) -> tuple[Offered | None, list[str]]:
        moved = decisions.withdrawing(seen, supporter_id)
        if moved is None or moved.status != "proposed":
            return None, []
        client = await client_of(org, case_id, deps)
        if client is None:
            return None, []
        kept = [o.supporter_id for o in moved.proposals]
        want = max(client.policy.proposals - len(kept), 0)
        # A place taken back is made up before anyone else's turn.
        async with deps.turns.offering(org).turn(FIRST):
            fresh = await offer(org, moved, client, deps, now, want, besides={*kept, supporter_id})
        return fresh, fresh.held

    def decide(match: CaseMatch | None, fresh: Offered | None) -> Change[CaseMatch] | None:
        if match is not None and match.status in ("accepted", "active"):
            return decisions.pause(match, supporter_id, now)
        if match is not None and match.status == "proposed" and fresh is None:
            return None  # the client's policy is not readable (erased): nothing to offer
        return decisions.withdraw(match, supporter_id, fresh, now)

    await on_case(org, case_id, deps, gather, decide)


# Matching's own events: about a case matching keeps, whose change freed supporters' slots.


async def matched(org: str, case_id: str, deps: MatchingDeps) -> CaseMatch:
    stored, _ = await deps.matches.load(org, case_id)
    return on_record(stored, "matching record of this case").record


@handlers.on(ProposalAccepted)
async def on_proposal_accepted(event: ProposalAccepted, meta: Meta, deps: MatchingDeps) -> None:
    await matched(meta.org, event.case_id, deps)
    await name_support_person(event, meta, deps)
    await supporters_changed(meta.org, event.released_supporter_ids, deps)


@handlers.on(ProposalsDeclined)
async def on_proposals_declined(event: ProposalsDeclined, meta: Meta, deps: MatchingDeps) -> None:
    await matched(meta.org, event.case_id, deps)
    await supporters_changed(meta.org, event.supporter_ids, deps)


@handlers.on(ProposalsExpired)
async def on_proposals_expired(event: ProposalsExpired, meta: Meta, deps: MatchingDeps) -> None:
    await matched(meta.org, event.case_id, deps)
    await supporters_changed(meta.org, event.supporter_ids, deps)


@handlers.on(MatchEnded)
async def on_match_ended(event: MatchEnded, meta: Meta, deps: MatchingDeps) -> None:
    await matched(meta.org, event.case_id, deps)
    await supporters_changed(meta.org, [event.supporter_id], deps)


@handlers.on(ServiceRefused)
async def on_service_refused(event: ServiceRefused, meta: Meta, deps: MatchingDeps) -> None:
    await matched(meta.org, event.case_id, deps)
    await supporters_changed(meta.org, event.released_supporter_ids, deps)


async def supporters_changed(org: str, supporter_ids: Sequence[str], deps: MatchingDeps) -> None:
    """Supporters became eligible, changed, or had slots freed: the index reads them again
    (its watch may lag), and waitlisted clients try again."""
    for supporter_id in supporter_ids:
        await deps.supporters.refresh(org, supporter_id)
    await retry_waitlist(org, deps)


async def name_support_person(event: ProposalAccepted, meta: Meta, deps: MatchingDeps) -> None:
    """The chosen supporter becomes the case's support person, so consent can be asked for
    them. The command id derives from the event's, so a redelivery is the same command."""
    command = NameSupportPerson(
        case_id=event.case_id, support_person=PeerSupporter(supporter_id=event.supporter_id)
    )
    command_id = uuid.uuid5(_NAMESPACE, meta.envelope.id).hex
    reply = await deps.asking.command(meta.org, command, command_id, cause=meta.envelope)
    if isinstance(reply, CommandRejected):
        log.warning(
            "support_person_not_named",
            org=meta.org,
            case_id=command.case_id,
            fields=[e.field for e in reply.errors],
        )


# The client's choices ---------------------------------------------------------------------


@handlers.on(AcceptProposal)
async def accept_proposal(command: AcceptProposal, received: Received, deps: MatchingDeps) -> Reply:
    org, case_id, now = received.org, command.case_id, deps.clock()

    async def gather(
        seen: CaseMatch | None,
    ) -> tuple[tuple[bool, bool, list[FieldError]], list[str]]:
        proposed = (
            seen is not None
            and seen.status in ("proposed", "expired")
            and any(o.supporter_id == command.supporter_id for o in seen.proposals)
        )
        if not proposed:
            return (False, False, []), []  # the decision refuses it, naming why
        # Eligibility as it is now, not as it was when the proposals were made.
        why_not = await unfit(org, command.supporter_id, deps)
        if why_not:
            return (False, False, why_not), []
        # Read first, hold last: nothing can fail between the hold and handing it over.
        agreed = await consented(org, case_id, command.supporter_id, deps)
        held = await hold(org, command.supporter_id, case_id, None, deps, now)
        return (held, agreed, []), [command.supporter_id] if held else []

    return answered(
        await on_case(
            org,
            case_id,
            deps,
            gather,
            lambda m, got: decisions.accept(m, command, got[0], got[1], got[2], now),
            received,
        )
    )


async def _new_proposals(
    org: str,
    case_id: str,
    deps: MatchingDeps,
    received: Received,
    moving: Callable[[CaseMatch | None], tuple[CaseMatch, list[str]]],
    decide: Callable[
        [CaseMatch | None, Client | None, Offered | None, datetime], Change[CaseMatch]
    ],
) -> Reply:
    """A decline or a change of supporter: new proposals, never again those left."""
    now = deps.clock()

    async def gather(
        seen: CaseMatch | None,
    ) -> tuple[tuple[Client | None, Offered | None], list[str]]:
        try:
            moved, _ = moving(seen)
        except Refused:
            return (None, None), []  # the decision refuses it, naming why
        client = await client_of(org, case_id, deps)
        if client is None:
            return (None, None), []
        # New places, in the client's turn (when they asked), as a new client's would be.
        async with deps.turns.offering(org).turn(moved.turn):
            offered = await offer(org, moved, client, deps, now)
        return (client, offered), offered.held

    return answered(
        await on_case(
            org, case_id, deps, gather, lambda m, got: decide(m, got[0], got[1], now), received
        )
    )


@handlers.on(DeclineProposals)
async def decline_proposals(
    command: DeclineProposals, received: Received, deps: MatchingDeps
) -> Reply:
    return await _new_proposals(
        received.org,
        command.case_id,
        deps,
        received,
        decisions.declining,
        decisions.decline(command.reason),
    )


@handlers.on(ChangeSupporter)
async def change_supporter(
    command: ChangeSupporter, received: Received, deps: MatchingDeps
) -> Reply:
    return await _new_proposals(
        received.org,
        command.case_id,
        deps,
        received,
        decisions.changing,
        decisions.change_supporter,
    )


@handlers.on(AcceptClient)
async def accept_client(command: AcceptClient, received: Received, deps: MatchingDeps) -> Reply:
    now = deps.clock()

    async def gather(seen: CaseMatch | None) -> tuple[None, list[str]]:
        return None, []

    return answered(
        await on_case(
            received.org,
            command.case_id,
            deps,
            gather,
            lambda m, _: answers.supporter_agrees(m, command.supporter_id, now),
            received,
        )
    )


@handlers.on(DeclineClient)
async def decline_client(command: DeclineClient, received: Received, deps: MatchingDeps) -> Reply:
    return await _new_proposals(
        received.org,
        command.case_id,
        deps,
        received,
        lambda m: answers.declining_client(m, command.supporter_id),
        answers.decline_client(command.supporter_id),
    )


@handlers.on(RefuseService)
async def refuse_service(command: RefuseService, received: Received, deps: MatchingDeps) -> Reply:
    org, now = received.org, deps.clock()

    async def gather(seen: CaseMatch | None) -> tuple[bool, list[str]]:
        return seen is not None or await deps.records.case(org, command.case_id) is not None, []

    return answered(
        await on_case(
            org,
            command.case_id,
            deps,
            gather,
            lambda m, exists: decisions.refuse(m, command.case_id, exists, now),
            received,
        )
    )


@handlers.on(ResumeMatch)
async def resume_match(command: ResumeMatch, received: Received, deps: MatchingDeps) -> Reply:
    org, now = received.org, deps.clock()

    async def gather(seen: CaseMatch | None) -> tuple[tuple[list[FieldError], bool], list[str]]:
        if seen is None or seen.status != "paused" or seen.supporter_id is None:
            return ([], False), []  # the decision refuses it, naming why
        why_not = await unfit(org, seen.supporter_id, deps)
        return (why_not, await consented(org, seen.case_id, seen.supporter_id, deps)), []

    return answered(
        await on_case(
            org,
            command.case_id,
            deps,
            gather,
            lambda m, got: decisions.resume(m, got[0], got[1], now),
            received,
        )
    )


# Many clients at once: imports and the waitlist ---------------------------------------------


@handlers.on(AssignBatch)
async def assign_batch(
    command: AssignBatch, received: Received, deps: MatchingDeps
) -> BatchAssigned | CommandRejected:
    org = received.org
    cases = [
        (stored, revision)
        for _, stored, revision in await match_records(deps.matches, org)
        if stored.record.import_batch == command.import_batch
    ]
    if len(cases) < command.expected:
        return rejected(
            received.envelope.type,
            received.envelope.id,
            "expected",
            f"{len(cases)} of {command.expected} cases of batch {command.import_batch} are "
            "ready (policies still being decided); retry shortly",
        )
    waiting = [(s, r) for s, r in cases if s.record.status == "awaiting_batch"]
    await offer_together(org, waiting, deps)
    statuses = [
        stored.record.status
        for _, stored, _ in await match_records(deps.matches, org)
        if stored.record.import_batch == command.import_batch
    ]
    return BatchAssigned(
        command_id=received.envelope.id,
        import_batch=command.import_batch,
        clients=len(statuses),
        proposed=sum(s != "waitlisted" and s != "awaiting_batch" for s in statuses),
        waitlisted=statuses.count("waitlisted"),
    )


@handlers.on(ClientWaitlisted)
async def on_client_waitlisted(event: ClientWaitlisted, meta: Meta, deps: MatchingDeps) -> None:
    """A place freed while this client was being waitlisted went to nobody: the release's
    retry looked before the client was on the list. Looking once more now closes that gap
    (a client still without a place stays, with nothing new said)."""
    await matched(meta.org, event.case_id, deps)
    await serve_the_waiting(meta.org, deps)
