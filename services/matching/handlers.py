"""Matching's handlers: a client's policy in, explained proposals out; the client's choices.

Every handler gathers what its decision needs (the client and their policy, consent) and
reserves what it must before committing: new proposals first *hold* their supporters'
slots, by compare-and-set on each caseload, refused when every slot is taken, so no
replica ever proposes a supporter beyond their free slots. Then a pure decision
(``decisions``) is committed with its outbox by the ``Changer``, only on the very state it
was gathered for: if the case moved on meanwhile, what was reserved goes back and it is
gathered again. Holds a committed change gives up are released when its outbox is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import uuid
from collections import defaultdict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from prometheus_client import Gauge

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
    AcceptProposal,
    AssignBatch,
    BatchAssigned,
    ChangeSupporter,
    ClientWaitlisted,
    DeclineProposals,
    MatchEnded,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    RefuseService,
    ResumeMatch,
    ServiceRefused,
)
from contracts.records import CaseMatch, Offer
from contracts.replies import CommandAccepted, CommandRejected, FieldError
from contracts.rules import (
    ConsentDecided,
    Kind,
    MatchingPolicyDecided,
    RulesDecision,
    SupporterEligibilityDecided,
    fit_to_support,
    unfit_reasons,
)
from contracts.scheduling import ServiceEnded
from runtime import metrics, periodic
from runtime.asking import Asking
from runtime.changes import Change, Contended, Refused, Stale, on_record
from runtime.clock import Clock
from runtime.commands import rejected
from runtime.dispatch import Handlers, Meta, Received
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.state import DecisionReader, RecordReader
from runtime.store import RecordStore, Stored
from runtime.unit import EventPublisher, Outcome, ReplyStore, UnitOfWork, answered
from runtime.vault import unless_erased
from services.matching import batch, decisions, domain
from services.matching.adapters import CaseloadStore, Standings, Supporters, match_records
from services.matching.decisions import Client, Offered
from services.matching.domain import Policy, SupporterIndex
from services.matching.figures import Figures, figures

log = get_logger(__name__)

SOURCE = f"alongside/{SERVICE}"
_NAMESPACE = uuid.UUID("2b6e0c8e-55a4-4d5e-9f0e-7a41c3d9b812")
# Rounds of fresh candidates an offer tries when others take the places it tried first.
OFFER_ROUNDS = 10
# Free places (of eligible supporters) above which first offers need no turn: far more than
# the clients offered at once could take, so none of them can be passed over.
PLENTY = 256
# Waitlist retries run back to back when more were asked for meanwhile (then the next event
# or the sweep asks again).
MAX_WAITLIST_ROUNDS = 5
ROUND_ATTEMPTS = 5
# Cases (and supporters) a batch reads, holds or commits at once.
BATCH_IN_FLIGHT = 32

Reply = CommandAccepted | CommandRejected
In = TypeVar("In")
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class MatchingDeps:
    matches: RecordStore[CaseMatch]
    caseloads: CaseloadStore
    supporters: Supporters
    standings: Standings
    records: RecordReader
    decisions: DecisionReader
    replies: ReplyStore
    events: EventPublisher
    unit: UnitOfWork[CaseMatch]
    asking: Asking
    settings: Settings
    clock: Clock
    turns: Turns = field(default_factory=lambda: Turns())


class InTurn:
    """A lock granted, whenever it is free, to the waiter who asked first (the smallest
    key), not to whoever came to the lock first: clients whose policies were decided out of
    order (the rules service handles events together) still take places in the order they
    asked."""

    def __init__(self) -> None:
        self._held = False
        self._owner: asyncio.Task[Any] | None = None
        self._waiting: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._arrivals = 0

    @contextlib.asynccontextmanager
    async def turn(self, key: datetime) -> AsyncIterator[None]:
        """The turn for ``key``; within a turn already held (a release made by a change the
        turn's holder commits), the same turn."""
        if self._held and self._owner is asyncio.current_task():
            yield
            return
        await self._acquire(key)
        self._owner = asyncio.current_task()
        try:
            yield
        finally:
            self._owner = None
            self._release()

    async def _acquire(self, key: datetime) -> None:
        if not self._held and not self._waiting:
            self._held = True
            return
        granted = asyncio.get_running_loop().create_future()
        self._arrivals += 1
        heapq.heappush(self._waiting, (key, self._arrivals, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # the turn was handed over as this waiter was cancelled
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():  # a waiter cancelled meanwhile is passed over
                granted.set_result(None)  # the lock passes to it, still held
                return
        self._held = False


FIRST = datetime.min.replace(tzinfo=UTC)  # the waitlist's turn: before any new client


@dataclass
class Turns:
    """Whose turn it is for an organisation's free places.

    New clients' first offers and waitlist retries take places one at a time, in turn
    (``offering``): run together (events are handled a batch at a time), a later client's
    offer took a place an earlier waiting client was about to get. One waitlist retry runs at
    a time: a retry asked for while one runs makes it run once more, and the asker waits for
    that round (when it returns, the waiting have had their turn)."""

    locks: dict[str, InTurn] = field(default_factory=dict)
    running: dict[str, asyncio.Future[None]] = field(default_factory=dict)  # done when it ends
    again: set[str] = field(default_factory=set)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    # The places opened (``LiveIndex.opened``) as of the start of the last waitlist round.
    served: dict[str, int] = field(default_factory=dict)

    def offering(self, org: str) -> InTurn:
        return self.locks.setdefault(org, InTurn())

    def later(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``work`` apart from the caller; a failure is logged (the next event or the
        sweep asks again)."""

        async def logged() -> None:
            try:
                await work
            except Exception as error:
                log.warning("background_failed", what=what, error=type(error).__name__)

        task = asyncio.get_running_loop().create_task(logged())
        self.background.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self.background.discard)


handlers: Handlers[MatchingDeps] = Handlers(SERVICE)


# Gathering and reserving ---------------------------------------------------------------


async def client_of(
    org: str, case_id: str, deps: MatchingDeps, announced_at: datetime | None = None
) -> Client | None:
    """The case and its matching policy; None until the rules service has decided the policy,
    and for a client erased. ``announced_at``: the time of an event announcing the policy,
    which the policy read must not be older than (else ``NotYet``: the event is looked at
    again later)."""
    decision: RulesDecision | None
    if announced_at is not None:
        decision = await deps.decisions.announced(org, Kind.MATCHING_POLICY, case_id, announced_at)
    else:
        decision, _ = await deps.decisions.get(org, Kind.MATCHING_POLICY, case_id)
    case = await unless_erased(deps.records.case(org, case_id))
    if case is None or decision is None:
        return None
    return Client(case, Policy.from_fired(decision.fired))


async def consented(org: str, case_id: str, supporter_id: str | None, deps: MatchingDeps) -> bool:
    """Every party consented to this supporter (consent is to a named support person)."""
    decision, _ = await deps.decisions.get(org, Kind.CONSENT, case_id)
    case = await deps.records.case(org, case_id)
    person = case.support_person if case else None
    return (
        supporter_id is not None
        and decision is not None
        and decision.outcome == "active"
        and isinstance(person, PeerSupporter)
        and person.supporter_id == supporter_id
    )


async def unfit(org: str, supporter_id: str, deps: MatchingDeps) -> list[FieldError]:
    """Why the supporter may not be bound to a client now (the rules' reasons), as decided
    last; empty when they may."""
    decision, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, supporter_id)
    return unfit_reasons(decision)


async def offer(
    org: str,
    match: CaseMatch,
    client: Client,
    deps: MatchingDeps,
    now: datetime,
    want: int | None = None,
    besides: Collection[str] = (),
) -> Offered:
    """Up to ``want`` (K) proposals, each holding a slot (the reservation), never naming
    ``besides``; or why there are none. A slot taken meanwhile by another client is made
    up from the next in line, as the index then knows it, until enough are held or the index
    has nobody left: a client is waitlisted only when no place that fits them is free, never
    for a race lost."""
    policy = client.policy
    want = policy.proposals if want is None else want
    index = deps.supporters.index(org).index
    until = now + timedelta(days=policy.hold_days)
    offers: list[Offer] = []
    tried = {*match.excluded, *besides}
    try:
        for _ in range(OFFER_ROUNDS):
            if len(offers) >= want:
                return Offered(offers)
            result = domain.propose(index, policy, want - len(offers), client.party_names, tried)
            if isinstance(result, domain.Waitlisted):
                return Offered(offers, None if offers else result)
            # The holds are taken at once (each is its own supporter's write); a refused one
            # marks that supporter full in the index, so the next round passes them by.
            outcomes = await asyncio.gather(
                *(
                    hold(org, p.supporter_id, match.case_id, until, deps, now, index)
                    for p in result
                ),
                return_exceptions=True,
            )
            tried.update(p.supporter_id for p in result)
            won = [p for p, held in zip(result, outcomes, strict=True) if held is True]
            offers += [decisions.offer_of(p, until) for p in won]
            failed = [error for error in outcomes if isinstance(error, BaseException)]
            if failed:
                raise failed[0]
    except BaseException:
        await give_back(org, match.case_id, [o.supporter_id for o in offers], deps)
        raise
    if offers:
        return Offered(offers)
    # Every round lost every race: looked at again shortly, rather than told to wait.
    raise Contended(f"{org}.{match.case_id}: every place tried was taken meanwhile")


async def hold(
    org: str,
    supporter_id: str,
    case_id: str,
    until: datetime | None,
    deps: MatchingDeps,
    now: datetime,
    index: SupporterIndex | None = None,
) -> bool:
    """Hold a slot; the index deciding who comes next learns of it at once."""
    return case_id in await hold_each(org, supporter_id, {case_id: until}, deps, now, index)


async def hold_each(
    org: str,
    supporter_id: str,
    wanted: Mapping[str, datetime | None],
    deps: MatchingDeps,
    now: datetime,
    index: SupporterIndex | None = None,
) -> set[str]:
    """Hold one of the supporter's slots for each case of ``wanted`` (case -> until) while
    they last, in one write; the cases held. The index learns of it at once."""
    cap = deps.supporters.cap(org, supporter_id)
    # The store tells the index at once (a refused hold too: that supporter is full, and the
    # next round passes them by); the watch says so later.
    held, _, caseload, _ = await deps.caseloads.hold_each(org, supporter_id, wanted, cap, now)
    index = index or deps.supporters.index(org).index
    i = index.position.get(supporter_id)
    if i is not None:  # an index being used while its rows change is told here
        index.free[i] = max(cap - caseload.taken(now), 0)
    return held


async def give_back(org: str, case_id: str, held: Sequence[str], deps: MatchingDeps) -> None:
    """Holds reserved for a decision that was not committed, unless the case's current state
    keeps them."""
    if not held:
        return
    stored, _ = await deps.matches.load(org, case_id)
    kept = decisions.holding(stored.record if stored else None)
    released = [supporter_id for supporter_id in held if supporter_id not in kept]
    if released:
        async with deps.turns.offering(org).turn(FIRST):
            for supporter_id in released:
                await deps.caseloads.release(org, supporter_id, case_id)
    if released and deps.standings.anyone_waiting(org):
        # No event will say these places are free again: the waiting are offered them now,
        # apart from this handler (which may be failing).
        deps.turns.later(serve_the_waiting(org, deps), f"waitlist_retry {org}")


def holds_releaser(
    caseloads: CaseloadStore, matches: RecordStore[CaseMatch], turns: Turns
) -> Callable[[str, str, Stored[CaseMatch]], Awaitable[None]]:
    """What a committed change does besides its events: give up the holds it released (run on
    every flush of its outbox, so a crash in between is completed). A hold the case has taken
    again since (an expired proposal accepted after all) is kept. Places open in a turn of
    their own: never while a client is being offered places or waitlisted."""

    async def release_holds(org: str, case_id: str, stored: Stored[CaseMatch]) -> None:
        match = stored.record
        if not match.released:
            return
        latest, _ = await matches.load(org, case_id)
        held_now = decisions.holding(latest.record if latest else None)
        async with turns.offering(org).turn(FIRST):
            for supporter_id in match.released:
                if supporter_id not in held_now:
                    await caseloads.release(org, supporter_id, case_id)

    return release_holds


# Committing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gathered(Generic[In]):
    """What a matching decision was gathered for: the case's state as seen, the places the
    index had opened by then, the inputs, and the slots held for them."""

    seen: CaseMatch | None
    opened: int
    inputs: In
    held: list[str]


async def on_case(
    org: str,
    case_id: str,
    deps: MatchingDeps,
    gather: Callable[[CaseMatch | None], Awaitable[tuple[In, list[str]]]],
    decide: Callable[[CaseMatch | None, In], Change[CaseMatch] | Stale | None],
    received: Received | None = None,
) -> Reply | None:
    """Gather (and reserve) for the case's state as it is, decide purely, commit: only on
    that very state, else what was reserved goes back and it is gathered again. ``gather``
    returns its inputs and the holds it took."""

    async def gathering(seen: CaseMatch | None) -> Gathered[In]:
        opened = deps.supporters.index(org).opened
        inputs, held = await gather(seen)
        return Gathered(seen, opened, inputs, held)

    async def release(gathered: Gathered[In]) -> None:
        # Nothing holds a slot for a decision that was not committed (give_back keeps what
        # the case's current state holds).
        await give_back(org, case_id, gathered.held, deps)

    def pure(current: CaseMatch | None, got: Gathered[In]) -> Change[CaseMatch] | Stale | None:
        if current != got.seen:
            return Stale("another change came first: what was reserved may not fit")
        change = decide(current, got.inputs)
        if change is None or isinstance(change, Stale):
            return change
        if (
            any(isinstance(e, ClientWaitlisted) for e in change.events)
            and deps.supporters.index(org).opened != got.opened
        ):
            return Stale("a place may have opened since the index said none was free")
        record = change.record.model_copy(update={"updated_at": deps.clock()})
        log.info("matching_changed", org=org, case_id=case_id, status=record.status)
        return Change(record, change.events)

    outcome: Outcome[CaseMatch] = await deps.unit.change(
        org, case_id, pure, gather=gathering, release=release, command=received
    )
    if outcome.committed and outcome.record is not None:
        # Known here at once, before the watch says so: who waits, and since when.
        deps.standings.note(org, case_id, outcome.record)
    return outcome.reply


async def nothing(_: CaseMatch | None) -> tuple[None, list[str]]:
    return None, []


# Reacting to events -----------------------------------------------------------------------


@handlers.on(MatchingPolicyDecided)
async def on_matching_policy_decided(
    event: MatchingPolicyDecided, meta: Meta, deps: MatchingDeps
) -> None:
    await first_offer(meta.org, event.case_id, deps, announced_at=meta.envelope.time)


async def first_offer(
    org: str, case_id: str, deps: MatchingDeps, announced_at: datetime | None = None
) -> None:
    """A client's first proposals once their policy is decided (or, for an import, wait for
    the batch); a waitlisted client whose policy changed tries again. ``announced_at``: the
    time of the event announcing the policy, which must not be newer than the policy read.
    Those who asked earlier and wait are served first: a later client never passes them."""
    now = deps.clock()
    index = deps.supporters.index(org)

    async def gather(
        seen: CaseMatch | None,
    ) -> tuple[tuple[Client | None, Offered | None, int], list[str]]:
        if not decisions.wants_offers(seen):
            return (None, None, index.opened), []
        # Never act on a policy older than the event that announced it.
        client = await client_of(org, case_id, deps, announced_at)
        if client is None:
            return (None, None, index.opened), []
        match = seen or decisions.first_state(case_id, client, now)
        if match.status == "awaiting_batch":
            return (client, None, index.opened), []
        if not _owed(org, deps) and _free_places(org, deps) >= PLENTY:
            # Room for everyone asking at once, and no place the waiting were not offered yet:
            # nobody can be passed, no turn is needed.
            served = index.opened
            offered = await offer(org, match, client, deps, now)
            return (client, offered, served), offered.held
        # Places are taken in turn, in the order clients asked, the waiting first.
        async with deps.turns.offering(org).turn(client.case.opened_at):
            if _owed(org, deps) and _room(org, deps):
                await _waitlist_rounds(org, deps)
            served = index.opened  # the places open now, after the waiting had their turn
            offered = await offer(org, match, client, deps, now)
        return (client, offered, served), offered.held

    def decide(
        match: CaseMatch | None, got: tuple[Client | None, Offered | None, int]
    ) -> Change[CaseMatch] | Stale | None:
        client, offered, served = got
        if (
            offered
            and offered.offers
            and index.opened != served
            and deps.standings.anyone_waiting(org)
        ):
            return Stale("a place opened meanwhile: the waiting have their turn at it first")
        return decisions.on_policy(match, case_id, client, offered, now)

    if not _owed(org, deps) and _free_places(org, deps) >= PLENTY:
        await on_case(org, case_id, deps, gather, decide)
        return
    # Few places: the whole decision, its commit included, in the client's turn, so that no
    # place opens between a waitlisting and its being stored.
    case = await unless_erased(deps.records.case(org, case_id))
    async with deps.turns.offering(org).turn(case.opened_at if case else now):
        await on_case(org, case_id, deps, gather, decide)


async def reconcile(deps: MatchingDeps) -> int:
    """The safety net: every case whose policy was decided more than ``settle_s`` ago has a
    matching outcome (proposed, waitlisted, awaiting its batch, or later); one without is
    offered now and counted (in a healthy run, none). Returns how many."""
    settled_before = deps.clock() - timedelta(seconds=deps.settings.settle_s)
    missing = 0
    for org, case_id in await deps.records.every_case():
        stored, _ = await deps.matches.load(org, case_id)
        if stored is not None:
            continue
        decision, _ = await deps.decisions.get(org, Kind.MATCHING_POLICY, case_id)
        if decision is None or decision.decided_at > settled_before:
            continue
        log.error("case_without_matching_outcome", org=org, case_id=case_id)
        metrics.RECONCILED.labels("matching", "case_without_matching_outcome").inc()
        await first_offer(org, case_id, deps)
        missing += 1
    return missing


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
        received.org, command.case_id, deps, received, decisions.declining, decisions.decline
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


async def offer_together(
    org: str,
    cases: Sequence[tuple[Stored[CaseMatch], int]],
    deps: MatchingDeps,
    in_order: bool = False,
) -> None:
    """Every client a first proposal before anyone gets a second: one global assignment
    (``batch.assign``) per round, scarce needs first; the rest are offered one by one,
    longest waiting first. ``in_order`` (the waitlist): the cases' order, as they asked, comes
    before the scores. Reads, holds (one write per supporter a round) and commits for
    different cases and supporters go ``BATCH_IN_FLIGHT`` at a time."""
    now = deps.clock()
    case_ids = [s.record.case_id for s, _ in cases]
    read = await _each(case_ids, lambda case_id: client_of(org, case_id, deps))
    clients = dict(zip(case_ids, read, strict=True))
    matches = {s.record.case_id: s.record for s, _ in cases}
    index_of = deps.supporters.index(org)
    index = index_of.index
    chosen: dict[str, list[Offer]] = defaultdict(list)

    def until(case_id: str) -> datetime:
        client = clients[case_id]
        assert client is not None
        return now + timedelta(days=client.policy.hold_days)

    for round_ in range(max((c.policy.proposals for c in clients.values() if c), default=0)):
        requests = [
            batch.Request(
                case_id,
                client.policy,
                client.party_names,
                frozenset(matches[case_id].excluded) | {o.supporter_id for o in chosen[case_id]},
            )
            for case_id, client in clients.items()
            if client and len(chosen[case_id]) == round_ < client.policy.proposals
        ]
        # The index may lag the caseloads (its watch): a refused hold marks that supporter
        # full and the clients it left out are assigned again.
        for _ in range(ROUND_ATTEMPTS):
            if not requests:
                break
            assignment = batch.assign(index, requests, in_order=in_order)
            by_supporter: dict[str, list[str]] = defaultdict(list)
            for case_id, supporter_id in assignment.chosen.items():
                by_supporter[supporter_id].append(case_id)
            wanted = {
                supporter_id: {c: until(c) for c in case_ids}
                for supporter_id, case_ids in by_supporter.items()
            }
            held = await _each(
                list(wanted.items()),
                lambda item: hold_each(org, item[0], item[1], deps, now, index),
            )
            refused = set()
            for supporter_id, held_for in zip(wanted, held, strict=True):
                for case_id in by_supporter[supporter_id]:
                    if case_id not in held_for:
                        refused.add(case_id)
                        continue
                    client = clients[case_id]
                    assert client is not None
                    proposal = domain.explain(
                        index,
                        client.policy,
                        index.position[supporter_id],
                        assignment.scores[case_id],
                    )
                    chosen[case_id].append(decisions.offer_of(proposal, until(case_id)))
            requests = [r for r in requests if r.client_id in refused]
    offered = [stored.record for stored, _ in cases if chosen.get(stored.record.case_id)]
    if in_order:
        # Told in the order they asked, one after another: nobody hears of a place before
        # someone who asked earlier (a few clients, a write each).
        for match in offered:
            await _settle(org, match, Offered(chosen[match.case_id]), deps, now)
    else:
        await _each(
            offered, lambda match: _settle(org, match, Offered(chosen[match.case_id]), deps, now)
        )
    opened = index_of.opened
    for stored, _ in cases:
        client = clients[stored.record.case_id]
        if client is not None and not chosen.get(stored.record.case_id):
            if in_order and index_of.opened != opened:
                # A place opened part way down the list: it is for the first in line, so
                # the list is gone through again from the top.
                deps.turns.again.add(org)
                return
            await _settle(
                org, stored.record, await offer(org, stored.record, client, deps, now), deps, now
            )


async def _each(items: Sequence[T], work: Callable[[T], Awaitable[U]]) -> list[U]:
    """``work`` on every item, ``BATCH_IN_FLIGHT`` at a time, in the items' order. Every one
    runs to its end before the first error (if any) is raised, so nothing is left half done
    behind it."""
    slots = asyncio.Semaphore(BATCH_IN_FLIGHT)

    async def one(item: T) -> U:
        async with slots:
            return await work(item)

    results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[U], results)


async def _settle(
    org: str, gathered_for: CaseMatch, offered: Offered, deps: MatchingDeps, now: datetime
) -> None:
    """Commit offers reserved for the state ``gathered_for``, unless the case moved on
    meanwhile (then its holds go back)."""

    async def reserved(seen: CaseMatch | None) -> tuple[Offered | None, list[str]]:
        if seen != gathered_for:
            log.info("batch_case_changed_meanwhile", org=org, case_id=gathered_for.case_id)
            await give_back(org, gathered_for.case_id, offered.held, deps)
            return None, []
        return offered, offered.held

    await on_case(
        org,
        gathered_for.case_id,
        deps,
        reserved,
        lambda m, got: (
            decisions.offers_or_waitlist(m, got, now) if m is not None and got is not None else None
        ),
    )


async def serve_the_waiting(org: str, deps: MatchingDeps) -> None:
    """Waitlisted clients try again, longest waiting first, when a place may be free for them
    (the index has an eligible supporter with a free slot; who fits whom, the offer decides)."""
    if _room(org, deps):
        await retry_waitlist(org, deps)  # which asks first whether a place is owed


def _room(org: str, deps: MatchingDeps) -> bool:
    """Whether the index has an eligible supporter with a free slot."""
    index = deps.supporters.index(org).index
    return bool((index.eligible & (index.free > 0)).any())


def _owed(org: str, deps: MatchingDeps) -> bool:
    """Whether someone waits and a place opened since the waiting last had their turn: after
    a round, no waiting client fits any place then free (else they would have it)."""
    opened = deps.supporters.index(org).opened
    return deps.standings.anyone_waiting(org) and deps.turns.served.get(org) != opened


def _free_places(org: str, deps: MatchingDeps) -> int:
    """Free slots of eligible supporters, as the index says."""
    index = deps.supporters.index(org).index
    return int(index.free[index.eligible].clip(min=0).sum())


@handlers.on(ClientWaitlisted)
async def on_client_waitlisted(event: ClientWaitlisted, meta: Meta, deps: MatchingDeps) -> None:
    """A place freed while this client was being waitlisted went to nobody: the release's
    retry looked before the client was on the list. Looking once more now closes that gap
    (a client still without a place stays, with nothing new said)."""
    await matched(meta.org, event.case_id, deps)
    await serve_the_waiting(meta.org, deps)


async def retry_waitlist(org: str, deps: MatchingDeps, read_all: bool = False) -> None:
    """Offer waitlisted clients whoever became eligible or free, longest waiting first. The
    waiting are those the standings name (kept by a watch and by this process's commits);
    ``read_all``: every record read instead (the sweep, in case a watch missed one). While a
    retry of the organisation runs, another asked for becomes one more round of it."""
    turns = deps.turns
    if not read_all and not _owed(org, deps):
        return  # no place opened since the waiting last had their turn
    if org in turns.running:
        turns.again.add(org)
        await asyncio.shield(turns.running[org])
        return
    ended = turns.running[org] = asyncio.get_running_loop().create_future()
    try:
        async with turns.offering(org).turn(FIRST):
            await _waitlist_rounds(org, deps, read_all)
    finally:
        del turns.running[org]
        turns.again.discard(org)
        ended.set_result(None)


async def _waitlist_rounds(org: str, deps: MatchingDeps, read_all: bool = False) -> None:
    """Rounds of the waitlist, as long as another was asked for meanwhile (a retry asked
    for, a place opened part way down the list), up to ``MAX_WAITLIST_ROUNDS``."""
    for _ in range(MAX_WAITLIST_ROUNDS):
        deps.turns.again.discard(org)
        await _retry_waitlist_once(org, deps, read_all)
        if org not in deps.turns.again:
            return


async def _retry_waitlist_once(org: str, deps: MatchingDeps, read_all: bool) -> None:
    # Every place open from here on is offered to the waiting in this round.
    deps.turns.served[org] = deps.supporters.index(org).opened
    if read_all or not deps.standings.watching:
        found = [
            (stored, revision) for _, stored, revision in await match_records(deps.matches, org)
        ]
    else:
        loaded = [await deps.matches.load(org, case_id) for case_id in deps.standings.waiting(org)]
        found = [(stored, revision) for stored, revision in loaded if stored is not None]
    # In the order they asked: a client waitlisted later may have asked earlier.
    waiting = sorted(
        ((stored, revision) for stored, revision in found if stored.record.status == "waitlisted"),
        key=lambda item: item[0].record.turn,
    )
    if len(waiting) > 1:
        await offer_together(org, waiting, deps, in_order=True)
    elif waiting:
        await _retry(org, waiting[0][0].record.case_id, deps)


async def _retry(org: str, case_id: str, deps: MatchingDeps) -> None:
    now = deps.clock()

    async def gather(seen: CaseMatch | None) -> tuple[Offered | None, list[str]]:
        if seen is None or seen.status != "waitlisted":
            return None, []
        client = await client_of(org, case_id, deps)
        if client is None:
            return None, []
        offered = await offer(org, seen, client, deps, now)
        return offered, offered.held

    await on_case(org, case_id, deps, gather, lambda m, got: decisions.retry(m, got, now))


async def expire_holds(deps: MatchingDeps, now: datetime | None = None) -> int:
    """Proposals the client did not answer in time give their slots back. Returns how many."""
    moment = now or deps.clock()
    await periodic.attempt(
        lambda: deps.unit.flush_pending(settle_s=deps.settings.settle_s), "outbox_flush"
    )
    due = [
        (org, stored.record.case_id)
        for org, stored, _ in await match_records(deps.matches)
        if stored.record.status == "proposed"
        and all(o.held_until <= moment for o in stored.record.proposals)
    ]

    async def expire(item: tuple[str, str]) -> None:
        await on_case(item[0], item[1], deps, nothing, lambda m, _: decisions.expire(m, moment))

    await periodic.each(due, expire, "hold_expiry")
    return len(due)


async def observe(deps: MatchingDeps) -> dict[str, Figures]:
    """Put matching's figures of every organisation on /metrics, as the records say now (as
    the watch on them has told so far)."""
    cases = [(org, standing) for (org, _), standing in deps.standings.cases.items()]
    found = figures(cases, deps.clock())
    gauges: dict[Gauge, Callable[[Figures], float]] = {
        metrics.WAITLISTED: lambda of: of.waitlisted,
        metrics.LONGEST_WAIT: lambda of: of.longest_wait_s,
        metrics.AWAITING_CHOICE: lambda of: of.awaiting_choice,
        metrics.HOLDS_ENDING_SOON: lambda of: of.holds_ending_soon,
        metrics.CONSENTS_PENDING: lambda of: of.consents_pending,
    }
    for gauge, value in gauges.items():
        gauge.clear()  # an organisation with no cases left shows none, not its last figure
        for org, of in found.items():
            gauge.labels(org).set(value(of))
    return found


async def waitlisted_orgs(deps: MatchingDeps) -> set[str]:
    return {
        org
        for org, stored, _ in await match_records(deps.matches)
        if stored.record.status == "waitlisted"
    }
