"""Scheduling's handlers: an active match in, an initial meeting, then sessions within bounds.

Every handler gathers what its decision needs (the organisation's policy and the time,
the case and its supporter, consent, the boundaries ruleset's verdict from the rules
service), then hands a pure decision (``sessions``, ``supervision``, ``groups``) to a
unit of work (``runtime.unit``), which commits the record with its outbox. A decision
that needs a verdict not yet gathered, or finds the case's supporter changed, is gathered
again: how they gather is in ``gathering``. Reminders are set and cleared as message
schedules when a change's outbox is flushed (``reminders``); work on the clock is in ``sweeps``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from contracts.intake import ClientErased
from contracts.matching import MatchActivated, MatchEnded, MatchPaused, MatchResumed, ServiceRefused
from contracts.records import (
    CaseRecord,
    CaseSchedule,
    GroupSession,
    SchedulingSettings,
    SupporterSupervision,
)
from contracts.replies import CommandAccepted, CommandRejected, FieldError
from contracts.rules import ConsentDecided, Kind, SupporterEligibilityDecided, fit_to_support
from contracts.scheduling import (
    SERVICE,
    BookSession,
    CancelSession,
    ConfigureScheduling,
    ConfirmMeeting,
    CreateGroupSession,
    ExtendService,
    GoAhead,
    JoinGroupSession,
    ProposeMeetingTime,
    RecordAttendance,
    RecordFrequencyAgreement,
    RecordSupervisionAttendance,
    RescheduleSession,
    SchedulingConfigured,
)
from runtime.changes import Change, on_record
from runtime.dispatch import Handlers, Meta, Received
from runtime.logging import get_logger
from runtime.state import SETTINGS_KEY
from runtime.unit import answered
from services.scheduling import groups, judging, sessions, supervision
from services.scheduling.adapters import NAMESPACE
from services.scheduling.domain import Context
from services.scheduling.gathering import (
    Inputs,
    Reply,
    SchedulingDeps,
    changed,
    consent_active,
    context,
    judge_missing,
    on_schedule,
    unfit,
)
from services.scheduling.judging import Verdicts
from services.scheduling.sweeps import plan_supervision

log = get_logger(__name__)

# Commands about one case's schedule.
CaseCommand = (
    ConfirmMeeting
    | ProposeMeetingTime
    | RecordAttendance
    | GoAhead
    | RecordFrequencyAgreement
    | BookSession
    | RescheduleSession
    | CancelSession
    | ExtendService
)


handlers: Handlers[SchedulingDeps] = Handlers(SERVICE)


async def on_case_command(
    command: CaseCommand,
    received: Received,
    deps: SchedulingDeps,
    decide: Callable[[CaseSchedule | None, Inputs], Change[CaseSchedule] | None],
    judged: bool = False,
) -> Reply:
    """A command on one case's schedule, answered."""
    return answered(
        await on_schedule(received.org, command.case_id, deps, decide, received, judged=judged)
    )


# Reacting to events ----------------------------------------------------------------------


async def on_record_case(org: str, case_id: str, deps: SchedulingDeps) -> None:
    on_record(await deps.records.case(org, case_id), "such case")


@handlers.on(MatchActivated)
async def on_match_activated(event: MatchActivated, meta: Meta, deps: SchedulingDeps) -> None:
    await on_record_case(meta.org, event.case_id, deps)
    on_record(await deps.records.supporter(meta.org, event.supporter_id), "such supporter")

    def arrange(schedule: CaseSchedule | None, got: Inputs) -> Change[CaseSchedule] | None:
        change = sessions.arrange(schedule, event.case_id, got.parties, got.ctx)
        if change is not None and not change.events:
            log.warning("no_common_time", org=meta.org, case_id=event.case_id)
        return change

    await on_schedule(
        meta.org, event.case_id, deps, arrange, supporter_id=event.supporter_id, judged=True
    )


@handlers.on(ConsentDecided)
async def on_consent_decided(event: ConsentDecided, meta: Meta, deps: SchedulingDeps) -> None:
    decision = await deps.decisions.announced(
        meta.org, Kind.CONSENT, event.case_id, meta.envelope.time
    )
    reason = judging.CONSENT_NOT_ACTIVE
    if decision.outcome == "active":
        # (A paused match stays paused: its schedule is suspended for that, not for consent.)
        await on_schedule(
            meta.org, event.case_id, deps, lambda s, got: sessions.resume(s, reason, got.ctx)
        )
    else:
        await on_schedule(
            meta.org,
            event.case_id,
            deps,
            lambda s, got: sessions.stop(s, reason, "suspended", got.ctx),
        )


@handlers.on(MatchEnded)
async def on_match_ended(event: MatchEnded, meta: Meta, deps: SchedulingDeps) -> None:
    if event.reason in ("service_completed", "client_erased"):
        return  # scheduling ended it itself, or ends it on ClientErased
    await on_record_case(meta.org, event.case_id, deps)
    changed = event.reason in ("change_of_supporter", "supporter_declined")
    reason = "supporter_changed" if changed else "service_refused"
    await on_schedule(
        meta.org,
        event.case_id,
        deps,
        lambda s, got: sessions.stop(s, reason, "ended", got.ctx, event.supporter_id),
    )


@handlers.on(MatchPaused)
async def on_match_paused(event: MatchPaused, meta: Meta, deps: SchedulingDeps) -> None:
    """The supporter became ineligible: every future session is cancelled, and nothing is
    arranged or booked until a coordinator reviews the match (``MatchResumed``). The same as
    scheduling does on the eligibility decision itself, whichever comes first."""
    await on_record_case(meta.org, event.case_id, deps)
    await on_schedule(
        meta.org,
        event.case_id,
        deps,
        lambda s, got: sessions.stop(s, judging.PAUSED, "suspended", got.ctx, event.supporter_id),
    )


@handlers.on(MatchResumed)
async def on_match_resumed(event: MatchResumed, meta: Meta, deps: SchedulingDeps) -> None:
    """A coordinator reviewed the paused match and it goes on with the same supporter: its
    future sessions are booked again, unless consent is not active meanwhile (then they come
    back when it is)."""
    await on_record_case(meta.org, event.case_id, deps)
    org = meta.org

    def resume(schedule: CaseSchedule | None, got: Inputs) -> Change[CaseSchedule] | None:
        still = None if got.parties.consent_active else judging.CONSENT_NOT_ACTIVE
        return sessions.resume(
            schedule, judging.PAUSED, got.ctx, supporter_id=event.supporter_id, still=still
        )

    await on_schedule(
        org, event.case_id, deps, resume, supporter_id=event.supporter_id, judged=True
    )


@handlers.on(ServiceRefused)
async def on_service_refused(event: ServiceRefused, meta: Meta, deps: SchedulingDeps) -> None:
    await on_record_case(meta.org, event.case_id, deps)
    await on_schedule(
        meta.org,
        event.case_id,
        deps,
        lambda s, got: sessions.stop(s, "service_refused", "ended", got.ctx),
    )


@handlers.on(ClientErased)
async def on_client_erased(event: ClientErased, meta: Meta, deps: SchedulingDeps) -> None:
    """Every future session is cancelled (their reminders with them); the schedule keeps its
    ids and dates, and its session notes are unreadable from now on."""
    await on_schedule(
        meta.org,
        event.case_id,
        deps,
        lambda s, got: sessions.stop(s, "client_erased", "ended", got.ctx),
    )


@handlers.on(SupporterEligibilityDecided)
async def on_supporter_eligibility_decided(
    event: SupporterEligibilityDecided, meta: Meta, deps: SchedulingDeps
) -> None:
    org, supporter_id = meta.org, event.supporter_id
    # The decision as stored (an event about a supporter nobody decided on is not acted on).
    decision = await deps.decisions.announced(
        org, Kind.ELIGIBILITY, supporter_id, meta.envelope.time
    )
    # Supervision is booked whatever the eligibility: attending it is how a supporter whose
    # supervision lapsed becomes eligible again.
    await plan_supervision(org, supporter_id, deps)
    # Eligible again resumes nothing: matching paused the supporter's matches, and their
    # sessions wait on a coordinator's review (MatchResumed). A full caseload stops new
    # matches, not the sessions of current ones.
    if fit_to_support(decision):
        return
    for _, case_id, stored, _ in await deps.schedules.store.each(org):
        if stored.record.supporter_id != supporter_id:
            continue
        await on_schedule(
            org,
            case_id,
            deps,
            lambda s, got: sessions.stop(s, judging.PAUSED, "suspended", got.ctx, supporter_id),
        )


# Commands on a case's schedule -----------------------------------------------------------


@handlers.on(ConfirmMeeting)
async def confirm_meeting(
    command: ConfirmMeeting, received: Received, deps: SchedulingDeps
) -> Reply:
    return await on_case_command(
        command,
        received,
        deps,
        lambda s, got: sessions.confirm(s, command, got.ctx, got.parties, got.verdicts),
        judged=True,
    )


@handlers.on(ProposeMeetingTime)
async def propose_meeting_time(
    command: ProposeMeetingTime, received: Received, deps: SchedulingDeps
) -> Reply:
    return await on_case_command(
        command,
        received,
        deps,
        lambda s, got: sessions.propose_time(s, command, got.ctx, got.parties),
        judged=True,
    )


@handlers.on(RecordAttendance)
async def record_attendance(
    command: RecordAttendance, received: Received, deps: SchedulingDeps
) -> Reply:
    return await on_case_command(
        command, received, deps, lambda s, got: sessions.attendance(s, command, got.ctx)
    )


@handlers.on(GoAhead)
async def go_ahead(command: GoAhead, received: Received, deps: SchedulingDeps) -> Reply:
    return await on_case_command(
        command,
        received,
        deps,
        lambda s, got: sessions.go_ahead(s, command, got.ctx, got.parties, got.verdicts),
        judged=True,
    )


@handlers.on(RecordFrequencyAgreement)
async def record_frequency_agreement(
    command: RecordFrequencyAgreement, received: Received, deps: SchedulingDeps
) -> Reply:
    return await on_case_command(
        command,
        received,
        deps,
        lambda s, got: sessions.agree_frequency(s, command, got.ctx, got.parties),
        judged=True,
    )


@handlers.on(BookSession)
async def book_session(command: BookSession, received: Received, deps: SchedulingDeps) -> Reply:
    return await on_case_command(
        command,
        received,
        deps,
        lambda s, got: sessions.book(s, command, got.ctx, got.parties, got.verdicts),
        judged=True,
    )


@handlers.on(RescheduleSession)
async def reschedule_session(
    command: RescheduleSession, received: Received, deps: SchedulingDeps
) -> Reply:
    return await on_case_command(
        command,
        received,
        deps,
        lambda s, got: sessions.reschedule(s, command, got.ctx, got.parties, got.verdicts),
        judged=True,
    )


@handlers.on(CancelSession)
async def cancel_session(command: CancelSession, received: Received, deps: SchedulingDeps) -> Reply:
    return await on_case_command(
        command, received, deps, lambda s, got: sessions.cancel(s, command, got.ctx)
    )


@handlers.on(ExtendService)
async def extend_service(command: ExtendService, received: Received, deps: SchedulingDeps) -> Reply:
    return await on_case_command(
        command,
        received,
        deps,
        lambda s, got: sessions.extend(s, command, got.ctx, got.parties),
        judged=True,
    )


# The organisation's policy -----------------------------------------------------------------


@handlers.on(ConfigureScheduling)
async def configure_scheduling(
    command: ConfigureScheduling, received: Received, deps: SchedulingDeps
) -> Reply:
    now = deps.clock()

    def configure(_: SchedulingSettings | None, __: None) -> Change[SchedulingSettings]:
        record = SchedulingSettings(policy=command.policy, updated_at=now)
        return Change(record, [SchedulingConfigured(policy=command.policy)])

    return answered(
        await changed(deps.settings_store, received.org, SETTINGS_KEY, configure, None, received)
    )


# Supervision -----------------------------------------------------------------------------


@handlers.on(RecordSupervisionAttendance)
async def record_supervision_attendance(
    command: RecordSupervisionAttendance, received: Received, deps: SchedulingDeps
) -> Reply:
    org = received.org

    async def gather(
        record: SupporterSupervision | None,
    ) -> tuple[Context, CommandAccepted | CommandRejected | None]:
        ctx = await context(org, deps)
        # Intake keeps vetting evidence; eligibility counts supervision from there. Its id
        # derives from the session, so asking again is the same command.
        evidence = supervision.evidence_of(record, command, ctx)
        if evidence is None:
            return ctx, None
        command_id = uuid.uuid5(NAMESPACE, f"{org}:{command.session_id}:attended").hex
        return ctx, await deps.asking.command(org, evidence, command_id, received.envelope)

    return answered(
        await changed(
            deps.supervision,
            org,
            command.supporter_id,
            lambda record, got: supervision.attended(record, command, got[0], got[1]),
            gather,
            received,
        )
    )


# Groups ----------------------------------------------------------------------------------


@handlers.on(CreateGroupSession)
async def create_group_session(
    command: CreateGroupSession, received: Received, deps: SchedulingDeps
) -> Reply:
    org = received.org

    async def gather(group: GroupSession | None) -> tuple[Context, list[FieldError]]:
        return await context(org, deps), await unfit(org, command.facilitator_id, deps)

    return answered(
        await changed(
            deps.groups,
            org,
            command.group_id,
            lambda group, got: groups.create(group, command, got[0], got[1]),
            gather,
            received,
        )
    )


@dataclass(frozen=True)
class Joining:
    """What a client joining a group is judged on: their case and consent, the facilitator's
    eligibility now, the boundaries' verdicts."""

    ctx: Context
    case: CaseRecord | None
    consent_active: bool
    facilitator_unfit: list[FieldError]
    verdicts: Verdicts


@handlers.on(JoinGroupSession)
async def join_group_session(
    command: JoinGroupSession, received: Received, deps: SchedulingDeps
) -> Reply:
    org = received.org
    verdicts = Verdicts()

    async def gather(group: GroupSession | None) -> Joining:
        await judge_missing(org, verdicts, deps)
        return Joining(
            ctx=await context(org, deps),
            case=await deps.records.case(org, command.case_id),
            consent_active=await consent_active(org, command.case_id, deps),
            # The group's facilitator as of now: their eligibility may have lapsed since.
            facilitator_unfit=await unfit(org, group.facilitator_id, deps) if group else [],
            verdicts=verdicts,
        )

    return answered(
        await changed(
            deps.groups,
            org,
            command.group_id,
            lambda group, got: groups.join(
                group,
                command,
                got.ctx,
                got.case,
                got.consent_active,
                got.facilitator_unfit,
                got.verdicts,
            ),
            gather,
            received,
        )
    )
