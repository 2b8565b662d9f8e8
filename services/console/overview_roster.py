"""How events set each case's stage and state, each supporter's standing (eligibility,
suspension, caseload) and each group session's places, for the console's lists: a second
fold beside ``overview_events``, one small function per event type."""

from __future__ import annotations

from datetime import datetime

from contracts.intake import (
    CaseStageChanged,
    ClientErased,
    IntakeReceived,
    SupporterErased,
    SupporterRegistered,
    SupporterUpdated,
)
from contracts.lists import CaseState
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
    ProposalsWithdrawn,
    ServiceRefused,
)
from contracts.rules import SupporterEligibilityDecided
from contracts.scheduling import GroupParticipantJoined, GroupSessionCreated, ServiceEnded
from services.console.folds import Folds
from services.console.overview_state import (
    FoldedCase,
    FoldedGroup,
    FoldedSupporter,
    OverviewState,
    utc,
)

_folds = Folds()
apply = _folds.apply

# Changes to a supporter's profile that the search finds them by.
_FOUND_BY = ("display_name", "contact")


def _enter(case: FoldedCase, state: CaseState, at: datetime) -> None:
    if case.state != state or case.state_since is None:
        case.state, case.state_since = state, at


def _hold(kept: OverviewState, case_id: str, holders: tuple[str, ...]) -> None:
    """``case_id`` holds a place with exactly ``holders`` now."""
    case = kept.case(case_id)
    for supporter_id in case.holders:
        if (supporter := kept.supporters.get(supporter_id)) is not None:
            supporter.caseload.discard(case_id)
    for supporter_id in holders:
        if (supporter := kept.supporters.get(supporter_id)) is not None:
            supporter.caseload.add(case_id)
    case.holders = holders


# Cases -------------------------------------------------------------------------------


@_folds.of(IntakeReceived)
def _intake(kept: OverviewState, event: IntakeReceived, at: datetime) -> None:
    case = kept.case(event.case_id)
    case.stage = event.stage.value
    _enter(case, "matching", at)
    kept.directory_changed.add(("client", event.case_id))


@_folds.of(CaseStageChanged)
def _stage(kept: OverviewState, event: CaseStageChanged, at: datetime) -> None:
    kept.case(event.case_id).stage = event.to_stage.value


@_folds.of(ClientWaitlisted)
def _waitlisted(kept: OverviewState, event: ClientWaitlisted, at: datetime) -> None:
    _hold(kept, event.case_id, ())
    _enter(kept.case(event.case_id), "waiting", at)


@_folds.of(MatchProposed)
def _proposed(kept: OverviewState, event: MatchProposed, at: datetime) -> None:
    _hold(kept, event.case_id, tuple(p.supporter_id for p in event.proposals))
    _enter(kept.case(event.case_id), "proposed" if event.proposals else "matching", at)


@_folds.of(ProposalAccepted)
def _accepted(kept: OverviewState, event: ProposalAccepted, at: datetime) -> None:
    _hold(kept, event.case_id, (event.supporter_id,))
    _enter(kept.case(event.case_id), "chosen", at)


def _unanswered(kept: OverviewState, case_id: str, at: datetime) -> None:
    _hold(kept, case_id, ())
    _enter(kept.case(case_id), "matching", at)


@_folds.of(ProposalsDeclined)
def _declined(kept: OverviewState, event: ProposalsDeclined, at: datetime) -> None:
    _unanswered(kept, event.case_id, at)


@_folds.of(ProposalsExpired)
def _expired(kept: OverviewState, event: ProposalsExpired, at: datetime) -> None:
    _unanswered(kept, event.case_id, at)


@_folds.of(ProposalsWithdrawn)
def _withdrawn(kept: OverviewState, event: ProposalsWithdrawn, at: datetime) -> None:
    case = kept.case(event.case_id)
    _hold(kept, event.case_id, tuple(h for h in case.holders if h not in event.supporter_ids))


@_folds.of(MatchActivated)
def _activated(kept: OverviewState, event: MatchActivated, at: datetime) -> None:
    _hold(kept, event.case_id, (event.supporter_id,))
    _enter(kept.case(event.case_id), "active", at)


@_folds.of(MatchPaused)
def _paused(kept: OverviewState, event: MatchPaused, at: datetime) -> None:
    _enter(kept.case(event.case_id), "paused", at)


@_folds.of(MatchResumed)
def _resumed(kept: OverviewState, event: MatchResumed, at: datetime) -> None:
    _enter(kept.case(event.case_id), "active", at)


@_folds.of(MatchEnded)
def _ended(kept: OverviewState, event: MatchEnded, at: datetime) -> None:
    _hold(kept, event.case_id, ())
    changing = event.reason in ("change_of_supporter", "supporter_declined")
    _enter(kept.case(event.case_id), "matching" if changing else "ended", at)


@_folds.of(ServiceRefused)
def _refused(kept: OverviewState, event: ServiceRefused, at: datetime) -> None:
    _hold(kept, event.case_id, ())
    _enter(kept.case(event.case_id), "ended", at)


@_folds.of(ServiceEnded)
def _service_ended(kept: OverviewState, event: ServiceEnded, at: datetime) -> None:
    _hold(kept, event.case_id, ())
    _enter(kept.case(event.case_id), "ended", at)


@_folds.of(ClientErased)
def _client_erased(kept: OverviewState, event: ClientErased, at: datetime) -> None:
    _hold(kept, event.case_id, ())
    _enter(kept.case(event.case_id), "erased", at)
    kept.directory_changed.discard(("client", event.case_id))
    kept.directory_erased.add(("client", event.case_id))


# Supporters --------------------------------------------------------------------------


@_folds.of(SupporterRegistered)
def _registered(kept: OverviewState, event: SupporterRegistered, at: datetime) -> None:
    if event.supporter_id not in kept.supporters:
        kept.supporters[event.supporter_id] = FoldedSupporter(
            registered_at=at, region=event.region, caseload_cap=event.caseload_cap
        )
    kept.directory_changed.add(("supporter", event.supporter_id))


@_folds.of(SupporterUpdated)
def _updated(kept: OverviewState, event: SupporterUpdated, at: datetime) -> None:
    supporter = kept.supporters.get(event.supporter_id)
    if supporter is None:
        return
    supporter.suspended = event.suspended
    supporter.region = event.region or supporter.region
    supporter.caseload_cap = event.caseload_cap or supporter.caseload_cap
    if any(f.split(".")[-1] in _FOUND_BY or f in _FOUND_BY for f in event.changed_fields):
        kept.directory_changed.add(("supporter", event.supporter_id))


@_folds.of(SupporterEligibilityDecided)
def _eligibility(kept: OverviewState, event: SupporterEligibilityDecided, at: datetime) -> None:
    supporter = kept.supporters.get(event.supporter_id)
    if supporter is not None:
        supporter.eligible, supporter.lapses_on = event.eligible, event.lapses_on


@_folds.of(SupporterErased)
def _supporter_erased(kept: OverviewState, event: SupporterErased, at: datetime) -> None:
    kept.supporters.pop(event.supporter_id, None)
    kept.directory_changed.discard(("supporter", event.supporter_id))
    kept.directory_erased.add(("supporter", event.supporter_id))


# Group sessions ----------------------------------------------------------------------


@_folds.of(GroupSessionCreated)
def _group_created(kept: OverviewState, event: GroupSessionCreated, at: datetime) -> None:
    kept.groups[event.group_id] = FoldedGroup(
        facilitator_id=event.facilitator_id,
        start=utc(event.start),
        end=utc(event.end),
        method=event.method.value,
        capacity=event.capacity,
    )


@_folds.of(GroupParticipantJoined)
def _group_joined(kept: OverviewState, event: GroupParticipantJoined, at: datetime) -> None:
    group = kept.groups.get(event.group_id)
    if group is not None and event.case_id not in group.case_ids:
        group.case_ids.append(event.case_id)


FOLDED = _folds.types
