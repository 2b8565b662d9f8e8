"""Matching's handlers: a client's policy in, explained proposals out; the client's choices.

Every change to a case's matching state is one compare-and-set write of its
``CaseMatch`` together with an outbox (its events, and a command's reply): the
commit point. New proposals first hold their supporters' slots (compare-and-set
on each caseload, refused when every slot is taken), so no replica ever proposes
a supporter beyond their free slots; holds a change gives up are released when
its outbox is flushed, and a hold taken for a change that lost the race is given
back.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.envelope import Event
from contracts.intake import (
    NameSupportPerson,
    PeerSupporter,
    SupporterRegistered,
    SupporterUpdated,
)
from contracts.matching import (
    SERVICE,
    AcceptProposal,
    AssignBatch,
    BatchAssigned,
    ChangeSupporter,
    ClientWaitlisted,
    DeclineProposals,
    MatchActivated,
    MatchEnded,
    MatchProposed,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    ProposedSupporter,
    RefuseService,
    ServiceRefused,
)
from contracts.records import CaseMatch, CaseRecord, Offer
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import ConsentDecided, Kind, MatchingPolicyDecided, SupporterEligibilityDecided
from contracts.scheduling import ServiceEnded
from runtime import changes, periodic, store
from runtime.asking import Asking
from runtime.changes import Refused
from runtime.clock import Clock
from runtime.commands import rejected
from runtime.dispatch import Handlers, Meta, Received
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.state import DecisionReader, RecordReader
from runtime.store import EventPublisher, RecordStore, ReplyStore, Stored
from services.matching import batch, domain
from services.matching.adapters import CaseloadStore, Supporters, match_records
from services.matching.domain import Policy, Proposal, SupporterIndex

log = get_logger(__name__)

SOURCE = f"alongside/{SERVICE}"
_NAMESPACE = uuid.UUID("2b6e0c8e-55a4-4d5e-9f0e-7a41c3d9b812")
# Candidates beyond K, in case another replica fills one of them first.
SPARE = 3
ROUND_ATTEMPTS = 5
TAKEN_MEANWHILE = domain.Waitlisted(
    "every suitable supporter's free slots were taken meanwhile", "taken-meanwhile"
)

Reply = CommandAccepted | CommandRejected


@dataclass(frozen=True)
class MatchingDeps:
    matches: RecordStore[CaseMatch]
    caseloads: CaseloadStore
    supporters: Supporters
    records: RecordReader
    decisions: DecisionReader
    replies: ReplyStore
    events: EventPublisher
    changer: store.Changer[CaseMatch]
    asking: Asking
    settings: Settings
    clock: Clock


@dataclass(frozen=True)
class Change:
    """A case's new matching state and what it announces."""

    record: CaseMatch
    events: list[Event]
    held: list[str] = field(default_factory=list)  # slots newly held for it (undone if it loses)
    released: list[str] = field(default_factory=list)  # holds it gives up


@dataclass(frozen=True)
class Client:
    case: CaseRecord
    policy: Policy

    @property
    def party_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.case.intake.other_parties)


async def _client(org: str, case_id: str, deps: MatchingDeps) -> Client | None:
    """The case and its matching policy; None until the rules service has decided the policy."""
    case = await deps.records.case(org, case_id)
    decision, _ = await deps.decisions.get(org, Kind.MATCHING_POLICY, case_id)
    if case is None or decision is None:
        return None
    return Client(case, Policy.from_fired(decision.fired))


# Reacting to events -------------------------------------------------------

handlers: Handlers[MatchingDeps] = Handlers(SERVICE)


@handlers.on(MatchingPolicyDecided)
async def on_matching_policy_decided(
    event: MatchingPolicyDecided, meta: Meta, deps: MatchingDeps
) -> None:
    org = meta.org
    await _change_case(org, event.case_id, deps, lambda m: _on_policy(org, m, event.case_id, deps))


@handlers.on(ConsentDecided)
async def on_consent_decided(event: ConsentDecided, meta: Meta, deps: MatchingDeps) -> None:
    if event.status == "active":
        await _change_case(meta.org, event.case_id, deps, lambda m: _activate(meta.org, m, deps))


@handlers.on(ServiceEnded)
async def on_service_ended(event: ServiceEnded, meta: Meta, deps: MatchingDeps) -> None:
    await _change_case(meta.org, event.case_id, deps, lambda m: _complete(m, event.supporter_id))


@handlers.on(SupporterRegistered)
async def on_supporter_registered(
    event: SupporterRegistered, meta: Meta, deps: MatchingDeps
) -> None:
    await _supporters_changed(meta.org, [event.supporter_id], deps)


@handlers.on(SupporterUpdated)
async def on_supporter_updated(event: SupporterUpdated, meta: Meta, deps: MatchingDeps) -> None:
    await _supporters_changed(meta.org, [event.supporter_id], deps)


@handlers.on(SupporterEligibilityDecided)
async def on_supporter_eligibility_decided(
    event: SupporterEligibilityDecided, meta: Meta, deps: MatchingDeps
) -> None:
    await _supporters_changed(meta.org, [event.supporter_id], deps)


@handlers.on(ProposalAccepted)
async def on_proposal_accepted(event: ProposalAccepted, meta: Meta, deps: MatchingDeps) -> None:
    await _name_support_person(event, meta, deps)
    await _supporters_changed(meta.org, event.released_supporter_ids, deps)


@handlers.on(ProposalsDeclined)
async def on_proposals_declined(event: ProposalsDeclined, meta: Meta, deps: MatchingDeps) -> None:
    await _supporters_changed(meta.org, event.supporter_ids, deps)


@handlers.on(ProposalsExpired)
async def on_proposals_expired(event: ProposalsExpired, meta: Meta, deps: MatchingDeps) -> None:
    await _supporters_changed(meta.org, event.supporter_ids, deps)


@handlers.on(MatchEnded)
async def on_match_ended(event: MatchEnded, meta: Meta, deps: MatchingDeps) -> None:
    await _supporters_changed(meta.org, [event.supporter_id], deps)


@handlers.on(ServiceRefused)
async def on_service_refused(event: ServiceRefused, meta: Meta, deps: MatchingDeps) -> None:
    await _supporters_changed(meta.org, event.released_supporter_ids, deps)


async def _supporters_changed(org: str, supporter_ids: Sequence[str], deps: MatchingDeps) -> None:
    """Supporters became eligible, changed, or had slots freed: the index reads them again
    (its watch may lag), and waitlisted clients try again."""
    for supporter_id in supporter_ids:
        await deps.supporters.refresh(org, supporter_id)
    await retry_waitlist(org, deps)


async def _on_policy(
    org: str, match: CaseMatch | None, case_id: str, deps: MatchingDeps
) -> Change | None:
    """A client's first proposals; a waitlisted client whose policy changed tries again."""
    if match is not None and match.status != "waitlisted":
        return None
    client = await _client(org, case_id, deps)
    if client is None:
        return None
    now = deps.clock()
    if match is None:
        batch_id = client.case.intake.import_batch
        match = CaseMatch(
            case_id=client.case.case_id, status="awaiting_batch" if batch_id else "proposed",
            import_batch=batch_id, since=now, updated_at=now,
        )  # fmt: skip
        if batch_id:
            return Change(match, [])
    return await _offer(org, match, client, deps, now)


async def _activate(org: str, match: CaseMatch | None, deps: MatchingDeps) -> Change | None:
    if match is None or match.status != "accepted" or not await _consented(org, match, deps):
        return None
    assert match.supporter_id is not None
    event = MatchActivated(case_id=match.case_id, supporter_id=match.supporter_id)
    return Change(match.model_copy(update={"status": "active", "since": deps.clock()}), [event])


async def _complete(match: CaseMatch | None, supporter_id: str) -> Change | None:
    """The funded service ended: the supporter's slot is free for someone else."""
    if match is None or match.status != "active" or match.supporter_id != supporter_id:
        return None
    event = MatchEnded(case_id=match.case_id, supporter_id=supporter_id, reason="service_completed")
    return Change(match.model_copy(update={"status": "completed"}), [event],
                  released=[supporter_id])  # fmt: skip


async def _consented(org: str, match: CaseMatch, deps: MatchingDeps) -> bool:
    """Every party consented to this supporter (consent is to a named support person)."""
    decision, _ = await deps.decisions.get(org, Kind.CONSENT, match.case_id)
    case = await deps.records.case(org, match.case_id)
    person = case.support_person if case else None
    return (
        decision is not None
        and decision.outcome == "active"
        and isinstance(person, PeerSupporter)
        and person.supporter_id == match.supporter_id
    )


async def _name_support_person(event: ProposalAccepted, meta: Meta, deps: MatchingDeps) -> None:
    """The chosen supporter becomes the case's support person, so consent can be asked for
    them. The command id derives from the event's, so a redelivery is the same command."""
    command = NameSupportPerson(
        case_id=event.case_id, support_person=PeerSupporter(supporter_id=event.supporter_id)
    )
    command_id = uuid.uuid5(_NAMESPACE, meta.envelope.id).hex
    reply = await deps.asking.command(meta.org, command, command_id, cause=meta.envelope)
    if isinstance(reply, CommandRejected):
        log.warning("support_person_not_named", org=meta.org, case_id=command.case_id,
                    fields=[e.field for e in reply.errors])  # fmt: skip


# Proposals ------------------------------------------------------------------


def _offer_of(proposal: Proposal, until: datetime) -> Offer:
    return Offer(
        supporter_id=proposal.supporter_id, score=round(proposal.score, 3),
        matched=list(proposal.matched), unmatched=list(proposal.unmatched),
        matched_on=list(proposal.matched_on), held_until=until,
    )  # fmt: skip


def _proposed(match: CaseMatch, offers: list[Offer], held: list[str], now: datetime) -> Change:
    record = match.model_copy(
        update={"status": "proposed", "round": match.round + 1, "proposals": offers,
                "waitlist_reason": None, "since": now}
    )  # fmt: skip
    event = MatchProposed(
        case_id=match.case_id,
        round=record.round,
        proposals=[
            ProposedSupporter(supporter_id=o.supporter_id, score=o.score,
                              matched_on=o.matched_on, held_until=o.held_until)
            for o in offers
        ],
    )  # fmt: skip
    return Change(record, [event], held=held)


def _waitlisted(match: CaseMatch, why: domain.Waitlisted, now: datetime) -> Change | None:
    if match.status == "waitlisted" and match.waitlist_reason == why.reason:
        return None  # still waiting for the same reason: nothing new to say
    since = match.since if match.status == "waitlisted" else now
    record = match.model_copy(
        update={"status": "waitlisted", "proposals": [], "waitlist_reason": why.reason,
                "since": since}
    )  # fmt: skip
    return Change(record, [ClientWaitlisted(case_id=match.case_id, constraint=why.constraint)])


async def _offer(
    org: str, match: CaseMatch, client: Client, deps: MatchingDeps, now: datetime
) -> Change | None:
    """Up to K proposals, each holding a slot; or the waitlist with the reason."""
    policy = client.policy
    index = deps.supporters.index(org).index
    result = domain.propose(
        index, policy, policy.proposals + SPARE, client.party_names, match.excluded
    )
    if isinstance(result, domain.Waitlisted):
        return _waitlisted(match, result, now)
    until = now + timedelta(days=policy.hold_days)
    offers: list[Offer] = []
    for proposal in result:
        if len(offers) == policy.proposals:
            break
        if await _hold(org, proposal.supporter_id, match.case_id, until, deps, now, index):
            offers.append(_offer_of(proposal, until))
    if not offers:
        return _waitlisted(match, TAKEN_MEANWHILE, now)
    return _proposed(match, offers, [o.supporter_id for o in offers], now)


async def _hold(
    org: str, supporter_id: str, case_id: str, until: datetime | None, deps: MatchingDeps,
    now: datetime, index: SupporterIndex | None = None,
) -> bool:  # fmt: skip
    """Hold a slot; the index deciding who comes next learns of it at once."""
    cap = deps.supporters.cap(org, supporter_id)
    caseload = await deps.caseloads.hold(org, supporter_id, case_id, until, cap, now)
    index = index or deps.supporters.index(org).index
    i = index.position.get(supporter_id)
    if i is not None:  # the watch will say so too; later decisions here need it now
        index.free[i] = max(cap - caseload.taken(now), 0) if caseload else 0
    return caseload is not None


# Committing a change ----------------------------------------------------------

Decide = Callable[[CaseMatch | None], Awaitable[Change | None]]


async def _change_case(
    org: str, case_id: str, deps: MatchingDeps, decide: Decide,
    command: Received | None = None,
) -> Reply | None:  # fmt: skip
    """Decide on the current state and commit (``Changer``), giving back the holds of a
    decision that lost the race to another replica."""
    held: list[str] = []

    async def decide_and_note(match: CaseMatch | None) -> changes.Change[CaseMatch] | None:
        change = await decide(match)
        if change is None:
            return None
        held[:] = change.held
        record = change.record.model_copy(
            update={"released": change.released, "updated_at": deps.clock()}
        )
        log.info("matching_changed", org=org, case_id=case_id, status=record.status)
        return changes.Change(record, change.events)

    async def give_back() -> None:
        await _give_back(org, case_id, held, deps)

    return await deps.changer.change(org, case_id, decide_and_note, command, give_back)


async def _give_back(org: str, case_id: str, held: Sequence[str], deps: MatchingDeps) -> None:
    """Holds taken for a change that lost the race, unless the winner keeps them."""
    stored, _ = await deps.matches.load(org, case_id)
    kept = _holding(stored.record) if stored else set()
    for supporter_id in held:
        if supporter_id not in kept:
            await deps.caseloads.release(org, supporter_id, case_id)


def holds_releaser(
    caseloads: CaseloadStore, matches: RecordStore[CaseMatch]
) -> Callable[[str, str, CaseMatch], Awaitable[None]]:
    """What a committed change does besides its events: give up the holds it released (run on
    every flush of its outbox, so a crash in between is completed). A hold the case has taken
    again since (an expired proposal accepted after all) is kept."""

    async def release_holds(org: str, case_id: str, match: CaseMatch) -> None:
        if not match.released:
            return
        latest, _ = await matches.load(org, case_id)
        held_now = _holding(latest.record) if latest else set()
        for supporter_id in match.released:
            if supporter_id not in held_now:
                await caseloads.release(org, supporter_id, case_id)

    return release_holds


def _holding(match: CaseMatch) -> set[str]:
    """The supporters whose slots the case holds in its current state."""
    if match.status in ("accepted", "active"):
        return {match.supporter_id} if match.supporter_id else set()
    return {o.supporter_id for o in match.proposals} if match.status == "proposed" else set()


# Commands ---------------------------------------------------------------------


@handlers.on(AcceptProposal)
async def accept_proposal(command: AcceptProposal, received: Received, deps: MatchingDeps) -> Reply:
    org = received.org
    return await _answer(received, command.case_id, lambda m: _accept(org, command, m, deps), deps)


@handlers.on(DeclineProposals)
async def decline_proposals(
    command: DeclineProposals, received: Received, deps: MatchingDeps
) -> Reply:
    org = received.org
    return await _answer(received, command.case_id, lambda m: _decline(org, m, deps), deps)


@handlers.on(ChangeSupporter)
async def change_supporter(
    command: ChangeSupporter, received: Received, deps: MatchingDeps
) -> Reply:
    org = received.org
    return await _answer(received, command.case_id, lambda m: _change_supporter(org, m, deps), deps)


@handlers.on(RefuseService)
async def refuse_service(command: RefuseService, received: Received, deps: MatchingDeps) -> Reply:
    org = received.org
    return await _answer(received, command.case_id, lambda m: _refuse(org, command, m, deps), deps)


async def _answer(received: Received, case_id: str, decide: Decide, deps: MatchingDeps) -> Reply:
    reply = await _change_case(received.org, case_id, deps, decide, received)
    assert reply is not None  # a command is always answered
    return reply


def _must_be(match: CaseMatch | None, *statuses: str) -> CaseMatch:
    if match is None:
        raise Refused("case_id", "nothing has been proposed for this case yet")
    if match.status not in statuses:
        wanted = " or ".join(statuses)
        raise Refused("case_id", f"the case's matching is {match.status}, not {wanted}")
    return match


async def _accept(
    org: str, command: AcceptProposal, match: CaseMatch | None, deps: MatchingDeps
) -> Change:
    match = _must_be(match, "proposed", "expired")
    offer = next((o for o in match.proposals if o.supporter_id == command.supporter_id), None)
    if offer is None:
        raise Refused("supporter_id", "this supporter was not proposed to this client")
    now = deps.clock()
    if not await _hold(org, offer.supporter_id, match.case_id, None, deps, now):
        raise Refused(
            "supporter_id", "the proposal expired and the supporter has no free slot now"
        )
    others = [o.supporter_id for o in match.proposals if o is not offer]
    record = match.model_copy(
        update={"status": "accepted", "supporter_id": offer.supporter_id, "proposals": [offer],
                "since": now}
    )  # fmt: skip
    events: list[Event] = [
        ProposalAccepted(case_id=match.case_id, supporter_id=offer.supporter_id,
                         released_supporter_ids=others)
    ]  # fmt: skip
    if await _consented(org, record, deps):
        record = record.model_copy(update={"status": "active"})
        events.append(MatchActivated(case_id=match.case_id, supporter_id=offer.supporter_id))
    return Change(record, events, held=[offer.supporter_id], released=others)


async def _decline(org: str, match: CaseMatch | None, deps: MatchingDeps) -> Change:
    match = _must_be(match, "proposed", "expired")
    declined = [o.supporter_id for o in match.proposals]
    event = ProposalsDeclined(case_id=match.case_id, supporter_ids=declined)
    return await _again(org, match, declined, event, deps)


async def _change_supporter(org: str, match: CaseMatch | None, deps: MatchingDeps) -> Change:
    match = _must_be(match, "accepted", "active")
    assert match.supporter_id is not None
    event = MatchEnded(
        case_id=match.case_id, supporter_id=match.supporter_id, reason="change_of_supporter"
    )
    return await _again(org, match, [match.supporter_id], event, deps)


async def _again(
    org: str, match: CaseMatch, leaving: list[str], event: Event, deps: MatchingDeps
) -> Change:
    """New proposals, never again naming the supporters the client is leaving."""
    client = await _client(org, match.case_id, deps)
    if client is None:
        raise Refused("case_id", "the case or its matching policy is no longer available")
    now = deps.clock()
    moved_on = match.model_copy(
        update={"excluded": [*match.excluded, *leaving], "supporter_id": None, "proposals": [],
                "status": "expired"}
    )  # fmt: skip
    change = await _offer(org, moved_on, client, deps, now)
    assert change is not None  # from "expired", even the waitlist is news
    return Change(change.record, [event, *change.events], change.held, released=leaving)


async def _refuse(
    org: str, command: RefuseService, match: CaseMatch | None, deps: MatchingDeps
) -> Change:
    now = deps.clock()
    if match is None:
        if await deps.records.case(org, command.case_id) is None:
            raise Refused("case_id", "there is no such case in this organisation")
        match = CaseMatch(case_id=command.case_id, status="refused", since=now, updated_at=now)
    elif match.status == "refused":
        raise Refused("case_id", "the client already refused the service")
    elif match.status == "completed":
        raise Refused("case_id", "the service has already come to its end")
    released = [o.supporter_id for o in match.proposals]
    if match.supporter_id and match.supporter_id not in released:
        released.append(match.supporter_id)
    events: list[Event] = []
    if match.supporter_id:
        events.append(MatchEnded(case_id=match.case_id, supporter_id=match.supporter_id,
                                 reason="service_refused"))  # fmt: skip
    events.append(ServiceRefused(case_id=match.case_id, released_supporter_ids=released))
    record = match.model_copy(
        update={"status": "refused", "proposals": [], "supporter_id": None, "since": now}
    )
    return Change(record, events, released=released)


# Many clients at once: imports and the waitlist ----------------------------------


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
            received.envelope.type, received.envelope.id, "expected",
            f"{len(cases)} of {command.expected} cases of batch {command.import_batch} are "
            "ready (policies still being decided); retry shortly",
        )  # fmt: skip
    waiting = [(s, r) for s, r in cases if s.record.status == "awaiting_batch"]
    await offer_together(org, waiting, deps)
    statuses = [
        stored.record.status
        for _, stored, _ in await match_records(deps.matches, org)
        if stored.record.import_batch == command.import_batch
    ]
    return BatchAssigned(
        command_id=received.envelope.id, import_batch=command.import_batch, clients=len(statuses),
        proposed=sum(s != "waitlisted" and s != "awaiting_batch" for s in statuses),
        waitlisted=statuses.count("waitlisted"),
    )  # fmt: skip


async def offer_together(
    org: str, cases: Sequence[tuple[Stored[CaseMatch], int]], deps: MatchingDeps
) -> None:
    """Every client a first proposal before anyone gets a second: one global assignment
    (``batch.assign``) per round, scarce needs first; the rest are offered one by one."""
    now = deps.clock()
    clients = {s.record.case_id: await _client(org, s.record.case_id, deps) for s, _ in cases}
    matches = {s.record.case_id: s.record for s, _ in cases}
    index = deps.supporters.index(org).index
    chosen: dict[str, list[Offer]] = defaultdict(list)
    for round_ in range(max((c.policy.proposals for c in clients.values() if c), default=0)):
        requests = [
            batch.Request(case_id, client.policy, client.party_names,
                          frozenset(matches[case_id].excluded)
                          | {o.supporter_id for o in chosen[case_id]})
            for case_id, client in clients.items()
            if client and len(chosen[case_id]) == round_ < client.policy.proposals
        ]  # fmt: skip
        # The index may lag the caseloads (its watch): a refused hold marks that supporter
        # full and the clients it left out are assigned again.
        for _ in range(ROUND_ATTEMPTS):
            if not requests:
                break
            assignment = batch.assign(index, requests)
            refused = set()
            for case_id, supporter_id in assignment.chosen.items():
                client = clients[case_id]
                assert client is not None
                until = now + timedelta(days=client.policy.hold_days)
                if await _hold(org, supporter_id, case_id, until, deps, now, index):
                    i = index.position[supporter_id]
                    proposal = domain.explain(index, client.policy, i, assignment.scores[case_id])
                    chosen[case_id].append(_offer_of(proposal, until))
                else:
                    refused.add(case_id)
            requests = [r for r in requests if r.client_id in refused]
    for stored, _ in cases:
        case_id = stored.record.case_id
        client = clients[case_id]
        offers = chosen.get(case_id)
        if offers:
            change: Change | None = _proposed(
                stored.record, offers, [o.supporter_id for o in offers], now
            )
        elif client is not None:
            change = await _offer(org, stored.record, client, deps, now)
        else:
            continue
        if change is not None:
            await _settle(org, stored.record, change, deps)


async def _settle(org: str, computed_from: CaseMatch, change: Change, deps: MatchingDeps) -> None:
    """Commit a change decided on ``computed_from``, unless the case moved on meanwhile
    (then its holds go back)."""
    applied = False

    async def if_unchanged(match: CaseMatch | None) -> Change | None:
        nonlocal applied
        applied = match == computed_from
        return change if applied else None

    await _change_case(org, computed_from.case_id, deps, if_unchanged)
    if not applied:
        log.info("batch_case_changed_meanwhile", org=org, case_id=computed_from.case_id)
        await _give_back(org, computed_from.case_id, change.held, deps)


async def retry_waitlist(org: str, deps: MatchingDeps) -> None:
    """Offer waitlisted clients whoever became eligible or free, longest waiting first."""
    waiting = sorted(
        (
            (stored, revision)
            for _, stored, revision in await match_records(deps.matches, org)
            if stored.record.status == "waitlisted"
        ),
        key=lambda item: item[0].record.since,
    )
    if len(waiting) > 1:
        await offer_together(org, waiting, deps)
    elif waiting:
        case_id = waiting[0][0].record.case_id
        await _change_case(org, case_id, deps, lambda m: _retry(org, m, deps))


async def _retry(org: str, match: CaseMatch | None, deps: MatchingDeps) -> Change | None:
    if match is None or match.status != "waitlisted":
        return None
    client = await _client(org, match.case_id, deps)
    return await _offer(org, match, client, deps, deps.clock()) if client else None


async def expire_holds(deps: MatchingDeps, now: datetime | None = None) -> int:
    """Proposals the client did not answer in time give their slots back. Returns how many."""
    moment = now or deps.clock()
    await periodic.attempt(deps.changer.flush_pending, "outbox_flush")
    due = [
        (org, stored.record.case_id)
        for org, stored, _ in await match_records(deps.matches)
        if stored.record.status == "proposed"
        and all(o.held_until <= moment for o in stored.record.proposals)
    ]

    async def expire(item: tuple[str, str]) -> None:
        await _change_case(item[0], item[1], deps, lambda m: _expire(m, moment))

    await periodic.each(due, expire, "hold_expiry")
    return len(due)


async def _expire(match: CaseMatch | None, now: datetime) -> Change | None:
    if match is None or match.status != "proposed":
        return None
    if any(o.held_until > now for o in match.proposals):
        return None
    gone = [o.supporter_id for o in match.proposals]
    record = match.model_copy(update={"status": "expired", "since": now})
    return Change(record, [ProposalsExpired(case_id=match.case_id, supporter_ids=gone)],
                  released=gone)  # fmt: skip


async def waitlisted_orgs(deps: MatchingDeps) -> set[str]:
    return {
        org
        for org, stored, _ in await match_records(deps.matches)
        if stored.record.status == "waitlisted"
    }
