"""What a decision on a case's schedule is judged on, and how.

Why a schedule is suspended; what the handler gathered for it (``Parties``, the boundaries'
``Verdicts``); whether the client may be bound to the supporter now (``bindable``); and the
boundaries ruleset's verdict on a booking or a move (``judge``), a refusal naming each rule
that refused (``rules.boundaries.<rule>``). A decision needing what was not gathered raises
``GatherAgain``. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from contracts.intake import Method
from contracts.records import CaseRecord, CaseSchedule, SupporterRecord
from contracts.replies import FieldError
from contracts.rules import RulesDecision, SessionFacts
from runtime.changes import Refused
from services.scheduling import domain
from services.scheduling.domain import Context

# Why a schedule is suspended, and what lifts it: every party's consent active again; a
# coordinator's review of the match its supporter's ineligibility paused (``MatchResumed``).
CONSENT_NOT_ACTIVE = "consent_not_active"
PAUSED = "supporter_ineligible"
SUSPENDED = {
    CONSENT_NOT_ACTIVE: "sessions are suspended until every party's consent is active again",
    PAUSED: "the match is paused until a coordinator reviews it (its supporter became "
    "ineligible): no meeting or session is arranged, booked or moved meanwhile",
}


class GatherAgain(Exception):
    """A decision found it needs what was not gathered (a verdict not asked for yet) or that
    what was gathered no longer fits (the case changed supporter). Raised from deep in a
    decision; ``gathering.changed`` turns it into the unit of work's ``Stale``."""


@dataclass(frozen=True)
class Parties:
    """What a schedule is judged on besides itself, read for one supporter: the case, the
    supporter, why the supporter may not support anyone now (the eligibility rules that
    refused; empty when they may), whether consent is active."""

    supporter_id: str
    case: CaseRecord | None
    supporter: SupporterRecord | None
    supporter_unfit: list[FieldError]
    consent_active: bool


@dataclass
class Verdicts:
    """The boundaries ruleset's verdicts the handler has gathered, by the facts they judged.
    A decision needing a verdict not yet gathered notes its facts and asks to regather."""

    known: dict[str, RulesDecision] = field(default_factory=dict)
    missing: list[SessionFacts] = field(default_factory=list)

    def on(self, facts: SessionFacts) -> RulesDecision:
        decision = self.known.get(facts.model_dump_json())
        if decision is None:
            self.missing.append(facts)
            raise GatherAgain("a boundaries verdict not asked for yet")
        return decision

    def add(self, facts: SessionFacts, decision: RulesDecision) -> None:
        self.known[facts.model_dump_json()] = decision


def refuse_unless_allowed(decision: RulesDecision) -> None:
    if decision.outcome == "refused":
        raise Refused.each(
            [
                FieldError(field=f"rules.boundaries.{f.rule}", reason=f.reason, label=f.named)
                for f in decision.fired
                if f.outcome == "refused"
            ]
        )


def bindable(schedule: CaseSchedule, parties: Parties) -> tuple[CaseRecord, SupporterRecord]:
    """The case and its supporter, if the client may be bound to them now: refused with each
    eligibility rule's reason while the supporter may not support anyone, and while the match
    is paused (whatever their eligibility now: only a coordinator's review lifts a pause)."""
    if parties.supporter_id != schedule.supporter_id:
        raise GatherAgain("the case changed supporter since they were read")
    if parties.case is None or parties.supporter is None:
        raise Refused("case_id", "the case or its supporter is no longer on record")
    errors = list(parties.supporter_unfit)
    if schedule.suspended_because == PAUSED:
        errors.append(FieldError(field="case_id", reason=SUSPENDED[PAUSED]))
    if errors:
        raise Refused.each(errors)
    return parties.case, parties.supporter


def judge(
    schedule: CaseSchedule,
    ctx: Context,
    parties: Parties,
    verdicts: Verdicts,
    *,
    start: datetime,
    minutes: int,
    method: Method,
    purposes: list[str] | None = None,
    moving: str | None = None,
    service_ends_on: date | None = None,
) -> None:
    """Refuse a booking the boundaries ruleset refuses (or that may not bind the client to
    the supporter at all: ``bindable``)."""
    case, supporter = bindable(schedule, parties)
    others = [s for s in schedule.sessions if s.session_id != moving]
    facts = domain.boundaries_facts(
        case,
        start=start,
        minutes=minutes,
        method=method,
        agreed_methods=set(case.intake.client.methods) & set(supporter.profile.methods),
        per_week=domain.sessions_within_a_week(others, start, ctx.zone),
        agreed_per_week=schedule.sessions_per_week_agreed,
        service_ends_on=service_ends_on or schedule.service_ends_on,
        consent_active=parties.consent_active,
        zone=ctx.zone,
        purposes=purposes or ["peer_support"],
    )
    refuse_unless_allowed(verdicts.on(facts))
