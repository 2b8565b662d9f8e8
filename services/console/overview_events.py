"""How each event the overview reads changes it: one small function per event type, found by
the event's type. ``FOLDED`` lists those types; any other event is skipped unread."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from contracts.intake import ClientErased, IntakeReceived, SupporterErased
from contracts.matching import (
    ClientWaitlisted,
    MatchActivated,
    MatchEnded,
    MatchPaused,
    MatchProposed,
    MatchResumed,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    ServiceRefused,
)
from contracts.overview import (
    AwaitingChoice,
    ConsentMissing,
    Hold,
    LiveRuleset,
    MeetingToConfirm,
    ToReview,
)
from contracts.rules import ConsentDecided, RulesetPublished, SupporterEligibilityDecided
from contracts.scheduling import (
    InitialMeetingProposed,
    SchedulingConfigured,
    ServiceExtended,
    SessionAttended,
    SessionBooked,
    SessionCancelled,
    SessionRescheduled,
    SessionsResumed,
    SessionsScheduled,
    SupervisionAttended,
    SupervisionScheduled,
)
from services.console.folds import Folds
from services.console.overview_state import (
    FoldedCase,
    FoldedSession,
    FoldedSupervision,
    OverviewState,
    utc,
)

_folds = Folds()
apply = _folds.apply


# Intake and matching -----------------------------------------------------------------


@_folds.of(IntakeReceived)
def _intake_received(kept: OverviewState, event: IntakeReceived, at: datetime) -> None:
    case = kept.case(event.case_id)
    if case.intake_at is None:
        case.intake_at = at
        kept.on(at).intakes.append(event.case_id)


@_folds.of(ClientErased)
def _client_erased(kept: OverviewState, event: ClientErased, at: datetime) -> None:
    case = kept.case(event.case_id)
    _stop_waiting(case, at)
    case.proposal = case.consent = case.meeting = None
    case.erased = True


@_folds.of(SupporterErased)
def _supporter_erased(kept: OverviewState, event: SupporterErased, at: datetime) -> None:
    kept.lapses.drop(event.supporter_id)
    for session_id, gone in list(kept.supervision.items()):
        if gone.supporter_id == event.supporter_id:
            del kept.supervision[session_id]
            kept.unattended.drop(session_id)
            kept.on(gone.start).supervision.discard(session_id)


@_folds.of(ClientWaitlisted)
def _client_waitlisted(kept: OverviewState, event: ClientWaitlisted, at: datetime) -> None:
    case = kept.case(event.case_id)
    since = case.waiting[1] if case.waiting else at
    case.waiting, case.proposal = (event.constraint, since), None
    if since == at:
        case.waitlisted.append([at, None])
        kept.waitlisted.add(event.case_id)


@_folds.of(MatchProposed)
def _match_proposed(kept: OverviewState, event: MatchProposed, at: datetime) -> None:
    case = kept.case(event.case_id)
    _stop_waiting(case, at)
    if case.first_proposed_at is None:
        case.first_proposed_at = at
        kept.on(at).first_proposals.append(event.case_id)
    case.proposal = _awaiting_choice(event, at)


def _awaiting_choice(event: MatchProposed, at: datetime) -> AwaitingChoice | None:
    holds = [
        Hold(supporter_id=p.supporter_id, held_until=utc(p.held_until)) for p in event.proposals
    ]
    if not holds:
        return None
    return AwaitingChoice(
        case_id=event.case_id,
        round=event.round,
        proposed_at=at,
        holds=holds,
        first_hold_ends=min(h.held_until for h in holds),
    )


@_folds.of(ProposalAccepted)
def _proposal_accepted(kept: OverviewState, event: ProposalAccepted, at: datetime) -> None:
    _answered(kept, event.case_id, at, "accepted")


@_folds.of(ProposalsDeclined)
def _proposals_declined(kept: OverviewState, event: ProposalsDeclined, at: datetime) -> None:
    _answered(kept, event.case_id, at, "declined")


@_folds.of(ProposalsExpired)
def _proposals_expired(kept: OverviewState, event: ProposalsExpired, at: datetime) -> None:
    _answered(kept, event.case_id, at, "expired")


@_folds.of(MatchActivated)
def _match_activated(kept: OverviewState, event: MatchActivated, at: datetime) -> None:
    case = kept.case(event.case_id)
    if case.activated_at is None:
        case.activated_at = at
        kept.on(at).activations.append(event.case_id)
    case.supporter_id = event.supporter_id


@_folds.of(MatchEnded)
def _match_ended(kept: OverviewState, event: MatchEnded, at: datetime) -> None:
    kept.case(event.case_id).paused = None
    if event.reason in ("change_of_supporter", "supporter_declined"):
        kept.on(at).outcomes.append((at, "changed_supporter"))


@_folds.of(MatchPaused)
def _match_paused(kept: OverviewState, event: MatchPaused, at: datetime) -> None:
    kept.case(event.case_id).paused = ToReview(
        case_id=event.case_id, supporter_id=event.supporter_id, since=at
    )


@_folds.of(MatchResumed)
def _match_resumed(kept: OverviewState, event: MatchResumed, at: datetime) -> None:
    kept.case(event.case_id).paused = None


@_folds.of(ServiceRefused)
def _service_refused(kept: OverviewState, event: ServiceRefused, at: datetime) -> None:
    case = kept.case(event.case_id)
    _stop_waiting(case, at)
    case.proposal = case.consent = case.meeting = case.paused = None
    outcome = "dropped_out" if case.activated_at else "refused"
    kept.on(at).outcomes.append((at, outcome))


def _stop_waiting(case: FoldedCase, at: datetime) -> None:
    if case.waiting is not None and case.waitlisted:
        case.waitlisted[-1][1] = at
    case.waiting = None


def _answered(kept: OverviewState, case_id: str, at: datetime, outcome: str) -> None:
    kept.case(case_id).proposal = None
    kept.on(at).outcomes.append((at, outcome))


# Rules -------------------------------------------------------------------------------


@_folds.of(ConsentDecided)
def _consent_decided(kept: OverviewState, event: ConsentDecided, at: datetime) -> None:
    case = kept.case(event.case_id)
    if event.status == "active":
        case.consent = None
        return
    case.consent = ConsentMissing(
        case_id=event.case_id,
        stage=event.stage,
        status=event.status,
        missing_party_ids=event.missing_party_ids,
        since=case.consent.since if case.consent else at,  # still missing: since first missed
    )


@_folds.of(SupporterEligibilityDecided)
def _eligibility_decided(
    kept: OverviewState, event: SupporterEligibilityDecided, at: datetime
) -> None:
    if event.eligible and event.lapses_on is not None:
        kept.lapses.put(event.supporter_id, event.lapses_on)
    else:
        kept.lapses.drop(event.supporter_id)


@_folds.of(RulesetPublished)
def _ruleset_published(kept: OverviewState, event: RulesetPublished, at: datetime) -> None:
    kept.rulesets.append(
        LiveRuleset(
            ruleset=event.ruleset,
            revision=event.revision,
            published_at=at,
            rolled_back_to=event.rolled_back_to,
            labels=event.labels,
        )
    )


# Scheduling --------------------------------------------------------------------------


@_folds.of(InitialMeetingProposed)
def _meeting_proposed(kept: OverviewState, event: InitialMeetingProposed, at: datetime) -> None:
    kept.case(event.case_id).meeting = MeetingToConfirm(
        case_id=event.case_id,
        supporter_id=event.supporter_id,
        session_id=event.session_id,
        start=utc(event.start),
        proposed_by=event.proposed_by,
    )


@_folds.of(SessionBooked)
def _session_booked(kept: OverviewState, event: SessionBooked, at: datetime) -> None:
    case = kept.case(event.case_id)
    case.supporter_id = event.supporter_id
    if event.kind == "initial_meeting":
        case.meeting = None
    booked = FoldedSession(event.case_id, event.supporter_id, event.kind, utc(event.start))
    _place(kept, event.session_id, booked)


@_folds.of(SessionsScheduled)
def _sessions_scheduled(kept: OverviewState, event: SessionsScheduled, at: datetime) -> None:
    kept.case(event.case_id).supporter_id = event.supporter_id
    _book(kept, event.case_id, event.session_ids, event.starts)


@_folds.of(ServiceExtended)
def _service_extended(kept: OverviewState, event: ServiceExtended, at: datetime) -> None:
    _book(kept, event.case_id, event.session_ids, event.starts)


@_folds.of(SessionRescheduled)
def _session_rescheduled(kept: OverviewState, event: SessionRescheduled, at: datetime) -> None:
    if event.session_id in kept.sessions:
        moved = kept.sessions[event.session_id]
        _place(kept, event.session_id, replace(moved, start=utc(event.start)))


@_folds.of(SessionCancelled)
def _session_cancelled(kept: OverviewState, event: SessionCancelled, at: datetime) -> None:
    if event.session_id in kept.sessions:
        kept.sessions[event.session_id].cancelled = True
    case = kept.case(event.case_id)
    if case.meeting and case.meeting.session_id == event.session_id:
        case.meeting = None


@_folds.of(SessionsResumed)
def _sessions_resumed(kept: OverviewState, event: SessionsResumed, at: datetime) -> None:
    for session_id in event.session_ids:
        if session_id in kept.sessions:
            kept.sessions[session_id].cancelled = False


@_folds.of(SessionAttended)
def _session_attended(kept: OverviewState, event: SessionAttended, at: datetime) -> None:
    if event.session_id in kept.sessions:
        kept.sessions[event.session_id].outcome = event.outcome


@_folds.of(SupervisionScheduled)
def _supervision_scheduled(kept: OverviewState, event: SupervisionScheduled, at: datetime) -> None:
    start = utc(event.start)
    earlier = kept.supervision.get(event.session_id)
    if earlier is not None:  # moved: off the day it was on (an erasure clears only its day)
        kept.on(earlier.start).supervision.discard(event.session_id)
    kept.supervision[event.session_id] = FoldedSupervision(event.supporter_id, event.kind, start)
    kept.on(start).supervision.add(event.session_id)
    kept.unattended.put(event.session_id, start)


@_folds.of(SupervisionAttended)
def _supervision_attended(kept: OverviewState, event: SupervisionAttended, at: datetime) -> None:
    if event.session_id in kept.supervision:
        kept.supervision[event.session_id].attended = True
        kept.unattended.drop(event.session_id)


@_folds.of(SchedulingConfigured)
def _scheduling_configured(kept: OverviewState, event: SchedulingConfigured, at: datetime) -> None:
    kept.zone_name = event.policy.time_zone


def _book(
    kept: OverviewState, case_id: str, session_ids: list[str], starts: list[datetime]
) -> None:
    # 1.0 events named no starts: those sessions are left out of the lists.
    supporter_id = kept.case(case_id).supporter_id or ""
    for session_id, start in zip(session_ids, starts, strict=False):
        _place(kept, session_id, FoldedSession(case_id, supporter_id, "regular", utc(start)))


def _place(kept: OverviewState, session_id: str, session: FoldedSession) -> None:
    """A session, new or moved, on the day it starts."""
    earlier = kept.sessions.get(session_id)
    if earlier is not None:
        kept.on(earlier.start).sessions.discard(session_id)
    kept.sessions[session_id] = session
    kept.on(session.start).sessions.add(session_id)


# The events the fold reads; the others are skipped unread (``readmodel`` checks the
# subject's type before parsing).
FOLDED = _folds.types
