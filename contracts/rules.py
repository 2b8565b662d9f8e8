"""Contracts of the rules service: the facts each kind of ruleset judges, its decisions and events.

A fact is one case at a time (a supporter, an intake, a consent snapshot, a
session request), flat apart from lists, so that an ops person can write
conditions on it. The rules service builds facts from stored records; other
services send them with ``EvaluateRules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from contracts.envelope import Command, EntityId, Event, Message, Part
from contracts.privacy import SENSITIVE
from contracts.replies import FieldError

SERVICE = "rules"


class Kind(StrEnum):
    ELIGIBILITY = "eligibility"
    MATCHING_POLICY = "matching_policy"
    CONSENT = "consent"
    BOUNDARIES = "boundaries"


class EligibilityFacts(Part):
    """One supporter's vetting, as of one day."""

    supporter_id: EntityId
    record_check_present: bool
    record_check_clear: bool
    record_check_days_left: int = Field(
        description="Days until the record check expires; < 0 once expired"
    )
    interview_passed: bool
    professional_references: int = Field(description="Satisfactory professional references")
    personal_references: int = Field(description="Satisfactory personal references")
    recovery_days: int = Field(description="Days since recovery began; -1 when not recorded")
    training_courses: list[str]
    days_since_supervision: int = Field(
        description="Days since supervision or a debrief; 99999 if never"
    )
    caseload_room: int = Field(description="Caseload cap minus active cases")
    suspended: bool


class PartyConsent(Part):
    party_id: EntityId
    status: Literal["given", "withdrawn", "missing"]
    covers_stage: bool = Field(description="The consent covers the case's current stage")


class ConsentFacts(Part):
    """Every party's consent to the current support person, at the case's current stage."""

    case_id: EntityId
    stage: str
    support_person_named: bool
    parties: list[PartyConsent]
    missing_parties: list[str]
    withdrawn_parties: list[str]


class MatchingFacts(Part):
    """What the client asked for at intake, as far as matching needs it."""

    case_id: EntityId
    age: int
    languages: list[str]
    gender_preference_strength: Literal["must", "prefer", "none"]
    gender_preference_values: list[str]
    cultural_preference_strength: Literal["must", "prefer", "none"]
    cultural_preference_values: list[str]
    lived_experience_preference_strength: Literal["must", "prefer", "none"]
    lived_experience_preference_values: list[str]
    age_preference: Literal["younger", "similar", "older", "any"]
    methods: list[str]
    safety_concerns: list[str]
    access_needs: list[str]
    region: str


class SessionFacts(Part):
    """A requested session between a client and their support person."""

    case_id: EntityId
    sessions_per_week: float
    both_agreed_more_often: bool
    duration_minutes: int
    method: str
    method_agreed: bool
    safety_concerns: list[str]
    days_past_service_end: int = Field(description="< 0 while within the funded service period")
    consent_active: bool
    purposes: list[str]


FACTS: dict[Kind, type[Part]] = {
    Kind.ELIGIBILITY: EligibilityFacts,
    Kind.MATCHING_POLICY: MatchingFacts,
    Kind.CONSENT: ConsentFacts,
    Kind.BOUNDARIES: SessionFacts,
}


# The outcomes each kind may give: services act on these words.
OUTCOMES: dict[Kind, frozenset[str]] = {
    Kind.ELIGIBILITY: frozenset({"eligible", "ineligible"}),
    Kind.MATCHING_POLICY: frozenset({"policy"}),
    Kind.CONSENT: frozenset({"active", "pending", "suspended"}),
    Kind.BOUNDARIES: frozenset({"allowed", "refused"}),
}


class FilterEffect(Part):
    """Keep supporters whose ``filter`` field shares any (or all) of ``values_from``,
    or equals ``equals``."""

    filter: str
    match: Literal["any", "all"] = "any"
    values_from: str | None = None
    equals: bool | str | None = None


class WeightEffect(Part):
    """Add ``points`` for each of ``values_from`` the supporter's ``weight`` field shares."""

    weight: str
    points: float
    values_from: str


class ExcludeMethodEffect(Part):
    exclude_method: str


class OfferEffect(Part):
    """How many supporters a client is offered at once, and how long each is held for them."""

    proposals: int = Field(ge=1, le=10)
    hold_days: int = Field(ge=1, le=30)


EFFECTS: tuple[type[Part], ...] = (FilterEffect, WeightEffect, ExcludeMethodEffect, OfferEffect)


# The applied forms: an effect as a decision carries it (``FiredRule.effect``), the rules
# service having filled in ``values`` from the fact ``values_from`` names. Exclusions and
# offers take nothing from the facts: their applied form is their declared form.

# A fact's value as an effect carries it (facts are flat apart from lists).
EffectValue = str | int | float | bool


class _ValuesFilledIn(Part):
    # The values are the client's wishes: an error names where it is, never what they are.
    model_config = ConfigDict(hide_input_in_errors=True)

    values_from: str | None = None
    values: list[EffectValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _filled_in(self) -> Self:
        if self.values_from is not None and "values" not in self.model_fields_set:
            raise ValueError(f"values_from {self.values_from!r} was not filled in as values")
        return self


class AppliedFilterEffect(_ValuesFilledIn):
    """A ``FilterEffect`` applied: keep supporters whose ``filter`` field shares any (or all)
    of ``values``, or equals ``equals``."""

    filter: str
    match: Literal["any", "all"] = "any"
    equals: bool | str | None = None


class AppliedWeightEffect(_ValuesFilledIn):
    """A ``WeightEffect`` applied: ``points`` for each of ``values`` the supporter's
    ``weight`` field shares."""

    weight: str
    points: float


# Which form an effect is, by the key that names it (in this order, should several appear).
_FORMS = ("proposals", "filter", "weight", "exclude_method")


def _form(effect: Any) -> str | None:
    if isinstance(effect, Mapping):
        return next((key for key in _FORMS if key in effect), None)
    return next((key for key in _FORMS if hasattr(effect, key)), None)


AppliedEffect = Annotated[
    Annotated[AppliedFilterEffect, Tag("filter")]
    | Annotated[AppliedWeightEffect, Tag("weight")]
    | Annotated[ExcludeMethodEffect, Tag("exclude_method")]
    | Annotated[OfferEffect, Tag("proposals")],
    Discriminator(
        _form,
        custom_error_type="effect_form",
        custom_error_message="an effect names one of: filter, weight, exclude_method or proposals",
    ),
]
_APPLIED_EFFECT: TypeAdapter[AppliedEffect] = TypeAdapter(
    AppliedEffect, config=ConfigDict(title="applied effect", hide_input_in_errors=True)
)


def read_effect(effect: Mapping[str, Any] | None) -> AppliedEffect | None:
    """A fired rule's effect in its applied form; None for none (``{}`` included). Raises
    ``pydantic.ValidationError`` for an effect of no known form or with wrong fields, which
    names the fields at fault but not their values (they may be the client's wishes)."""
    if not effect:
        return None
    return _APPLIED_EFFECT.validate_python(effect)


class FiredRule(Part):
    rule: str
    outcome: str
    # The rule in plain words, from its ruleset ("Record check expired"): never about the
    # person, so shown wherever the rule is named. None from a version without labels.
    label: str | None = None
    # Filled in from the facts ("Length of recovery (200 days) is below the minimum").
    reason: Annotated[str, SENSITIVE]
    # A policy's effect carries values drawn from the facts (what the client hoped for).
    effect: Annotated[dict[str, Any] | None, SENSITIVE] = None

    @property
    def named(self) -> str:
        """The label, or words made from the id for a version published without labels."""
        return self.label or self.rule.replace("-", " ").capitalize()

    @property
    def applied_effect(self) -> AppliedEffect | None:
        """``effect`` read as its applied form (see ``read_effect``)."""
        return read_effect(self.effect)


class RulesetRef(Part):
    """Exactly which ruleset decided: organisation, kind, version and content hash."""

    org: str
    kind: Kind
    version: str
    content_hash: str

    @property
    def id(self) -> str:
        return f"{self.org}.{self.kind.value}@{self.version}"


class RulesDecision(Part):
    kind: Kind
    subject_id: EntityId
    outcome: str
    fired: list[FiredRule]
    ruleset: RulesetRef
    decided_at: datetime
    # Where the decision log (operators only) keeps it, with why: ``alongside rules explain
    # --decision ID``.
    decision_id: str | None = None
    # SHA-256 of the facts as decided on (canonical JSON): which facts, without keeping them.
    facts_sha256: str | None = None
    # Eligibility only: the first day it would lapse with no new input.
    lapses_on: date | None = None
    # Eligibility only: ineligible only because the caseload is full (no new matches; the
    # current ones carry on).
    caseload_full_only: bool = False


def fit_to_support(decision: RulesDecision | None) -> bool:
    """Whether a supporter may be bound to a client now (chosen, activated, met): eligible, or
    ineligible only because their caseload is full (the slot they hold for this client is
    part of that caseload)."""
    return decision is not None and (decision.outcome == "eligible" or decision.caseload_full_only)


def unfit_reasons(decision: RulesDecision | None) -> list[FieldError]:
    """Why a supporter may not be bound to a client now: one error per rule that refused
    (``rules.eligibility.<rule>``, as boundaries refusals are named), with the rule's reason;
    empty when they may. The reasons go to whoever gave the command (a coordinator or an
    integration), never into events."""
    if fit_to_support(decision):
        return []
    if decision is None:
        reason = "no eligibility decision is on record for this supporter yet"
        return [FieldError(field="supporter_id", reason=reason)]
    return [
        FieldError(field=f"rules.eligibility.{f.rule}", reason=f.reason, label=f.named)
        for f in decision.fired
        if f.outcome != "eligible"
    ] or [FieldError(field="supporter_id", reason="this supporter is not eligible at present")]


class PublishedRuleset(Part):
    """What ``alongside rules publish`` puts in the ``rules`` KV bucket, key ``<org>.<kind>``:
    the texts every replica compiles, and the hash they must compile to."""

    org: str
    kind: Kind
    version: str
    content_hash: str
    default_text: str
    override_text: str | None
    published_at: datetime
    revision: int = 0  # the KV revision, filled in when read back
    rolled_back_to: str | None = None


class EvaluateRules(Command):
    """Evaluate one fact against the organisation's live ruleset of that kind. Stores nothing."""

    type_name: ClassVar[str] = "EvaluateRules"
    service: ClassVar[str] = SERVICE
    kind: Kind
    facts: dict[str, Any]


class RulesEvaluated(Message):
    type_name: ClassVar[str] = "RulesEvaluated"
    status: Literal["evaluated"] = "evaluated"
    command_id: str
    decision: RulesDecision


# Decision events name the rules that fired in none of the kinds: an eligibility rule id
# (``record-check-not-clear``) discloses vetting, a matching policy's (``must-gender``) the
# client's wishes, and consent's are said better by ``missing_party_ids``. Each carries its
# ``decision_id``, which operators resolve in the decision log.


class SupporterEligibilityDecided(Event):
    """Eligibility changed or was confirmed; the reasons stay in the decision log."""

    type_name: ClassVar[str] = "SupporterEligibilityDecided"
    schema_version: ClassVar[str] = "1.2"  # 1.1: caseload_full_only; 1.2: decision_id
    supporter_id: EntityId
    eligible: bool
    # Not eligible for new matches only because the caseload is full: current matches go on.
    caseload_full_only: bool = False
    lapses_on: date | None
    ruleset: RulesetRef
    decision_id: str | None = None


class ConsentDecided(Event):
    type_name: ClassVar[str] = "ConsentDecided"
    schema_version: ClassVar[str] = "1.1"  # 1.1: decision_id
    case_id: EntityId
    stage: str
    status: Literal["active", "pending", "suspended"]
    missing_party_ids: list[EntityId]
    ruleset: RulesetRef
    decision_id: str | None = None


class MatchingPolicyDecided(Event):
    """A client's matching policy is ready; its filters and weights are in the decision
    record, and why in the decision log."""

    type_name: ClassVar[str] = "MatchingPolicyDecided"
    schema_version: ClassVar[str] = "1.1"  # 1.1: decision_id
    case_id: EntityId
    ruleset: RulesetRef
    decision_id: str | None = None


class LoggedDecision(Part):
    """One entry of the decision log (stream ``DECISIONLOG``, operators only), in the
    spirit of Open Policy Agent's: what was decided about whom, by exactly which ruleset,
    which rules fired and why, and a hash of the facts (not the facts: they hold vetting
    and safety details). Kept for the organisation's audit period."""

    org: str
    decision: RulesDecision  # with its decision_id
    # The message that led to the decision (an event, or an EvaluateRules command).
    cause_id: str | None = None


class RulesetPublished(Event):
    type_name: ClassVar[str] = "RulesetPublished"
    schema_version: ClassVar[str] = "1.1"  # 1.1: labels
    ruleset: RulesetRef
    revision: int
    rolled_back_to: str | None = None
    # Each rule's plain words by its id, for pages that name a rule ("caseload-full": "Caseload
    # full"). Labels describe the rule, never a person.
    labels: dict[str, str] = Field(default_factory=dict)


COMMANDS: tuple[type[Command], ...] = (EvaluateRules,)
EVENTS: tuple[type[Event], ...] = (
    SupporterEligibilityDecided,
    ConsentDecided,
    MatchingPolicyDecided,
    RulesetPublished,
)
