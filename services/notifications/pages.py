"""What a person's page shows, read when they open their link: only what the link's
purpose needs, and nothing sensitive about anyone.

- choosing a supporter: each proposed supporter's first name, languages, ways of meeting
  and which of the client's wishes they meet (by field name), and until when they wait;
- consent: which support person (by kind, never by name) for which stage, and where the
  party's answer stands;
- a supporter's offer: the client's first name, languages, ways of meeting and region;
- a schedule: the person's meetings and sessions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.intake import CLIENT_PARTY_ID, PeerSupporter
from contracts.notifications import (
    ContactPreferences,
    PageClient,
    PageConsent,
    PageOffer,
    PageSession,
    Person,
)
from contracts.records import CaseMatch, CaseRecord, CaseSchedule, PersonalLink
from services.notifications.gathering import NotificationsDeps, preferences

# An action on consent may follow a code checked this recently.
CODE_HOLDS = timedelta(minutes=10)


def first_name(display_name: str) -> str:
    return display_name.split()[0] if display_name.split() else display_name


async def _match(org: str, match: CaseMatch | None, deps: NotificationsDeps) -> dict[str, object]:
    if match is None:
        return {}
    chosen = None
    if match.supporter_id is not None:
        found = await deps.records.supporter(org, match.supporter_id)
        chosen = first_name(found.profile.display_name) if found else None
    return {
        "match_status": match.status,
        "offers": await _offers(org, match, deps),
        "chosen_id": match.supporter_id,
        "chosen_name": chosen,
    }


async def page(
    org: str, link: PersonalLink, now: datetime, deps: NotificationsDeps
) -> dict[str, object]:
    """The page's fields (``LinkOpened``'s), for the link's purpose."""
    person, case_id = link.person, link.case_id
    kept = await preferences(org, person, deps)
    shown: dict[str, object] = {
        "preferences": kept.preferences if kept else ContactPreferences(),
        "safety_locked": bool(kept and kept.safety_by_coordinator),
        "code_checked": link.code_checked_at is not None
        and link.code_checked_at + CODE_HOLDS > now,
    }
    case = await deps.records.case(org, case_id) if case_id else None
    if person.kind == "supporter":
        assert person.supporter_id is not None
        found = await deps.records.supporter(org, person.supporter_id)
        shown["first_name"] = first_name(found.profile.display_name) if found else None
    elif case is not None:
        shown["first_name"] = _own_name(case, person)
    if link.purpose == "choose_supporter" and case_id:
        match = await _load_match(org, case_id, deps)
        shown |= await _match(org, match, deps)
    elif link.purpose == "consent" and case is not None:
        shown["consent"] = _consent(case, person.party_id or CLIENT_PARTY_ID)
    elif link.purpose == "supporter_offer" and case is not None:
        match = await _load_match(org, case.case_id, deps)
        shown["offered"] = _client(case, match)
    if link.purpose == "schedule" or person.kind == "supporter":
        shown["sessions"] = await _sessions(org, person, case_id, deps)
    return shown


def _own_name(case: CaseRecord, person: Person) -> str | None:
    if person.kind == "client":
        return first_name(case.intake.client.display_name)
    party = next((p for p in case.intake.other_parties if p.party_id == person.party_id), None)
    return (
        party.name
        if party and party.kind == "organisation"
        else (first_name(party.name) if party else None)
    )


async def _load_match(org: str, case_id: str, deps: NotificationsDeps) -> CaseMatch | None:
    stored, _ = await deps.matches.load(org, case_id)
    return stored.record if stored else None


async def _offers(org: str, match: CaseMatch | None, deps: NotificationsDeps) -> list[PageOffer]:
    if match is None or match.status != "proposed":
        return []
    offers = []
    for offer in match.proposals:
        supporter = await deps.records.supporter(org, offer.supporter_id)
        if supporter is None:
            continue
        profile = supporter.profile
        offers.append(
            PageOffer(
                supporter_id=offer.supporter_id,
                first_name=first_name(profile.display_name),
                languages=list(profile.languages),
                methods=[m.value for m in profile.methods],
                matched_on=list(offer.matched_on),
                held_until=offer.held_until,
            )
        )
    return offers


def _consent(case: CaseRecord, party_id: str) -> PageConsent:
    person = case.support_person
    kind = (
        None if person is None else ("peer" if isinstance(person, PeerSupporter) else person.kind)
    )
    given = case.consents.get(party_id)
    status = "missing" if given is None else given.status
    stage = case.stage.value
    active = all(
        (c := case.consents.get(p)) is not None and c.status == "given" and case.stage in c.stages
        for p in case.party_ids
    )
    return PageConsent(
        party_id=party_id,
        support_person=kind,
        stage=stage,
        status=status,
        stages=[s.value for s in given.stages] if given else [],
        active=active,
    )


def _client(case: CaseRecord, match: CaseMatch | None) -> PageClient:
    client = case.intake.client
    return PageClient(
        case_id=case.case_id,
        first_name=first_name(client.display_name),
        languages=list(client.languages),
        methods=[m.value for m in client.methods],
        region=client.region,
        status=match.status if match else "unknown",
        supporter_accepted=bool(match and match.supporter_accepted),
    )


async def _sessions(
    org: str, person: Person, case_id: str | None, deps: NotificationsDeps
) -> list[PageSession]:
    """A client's sessions of their case; a supporter's of every case they support."""
    schedules: list[CaseSchedule] = []
    if person.kind == "supporter":
        assert person.supporter_id is not None
        # Their cases are those holding their slots (one read, not every schedule's).
        held = await deps.caseloads.load(org, person.supporter_id)
        for held_case in held[0].holds:
            stored, _ = await deps.schedules.load(org, held_case)
            if stored is not None and stored.record.supporter_id == person.supporter_id:
                schedules.append(stored.record)
    elif case_id is not None:
        stored, _ = await deps.schedules.load(org, case_id)
        schedules = [stored.record] if stored else []
    shown = []
    side = "supporter" if person.kind == "supporter" else "client"
    for schedule in schedules:
        other = await _other_name(org, person, schedule, deps)
        for session in schedule.sessions:
            shown.append(
                PageSession(
                    case_id=schedule.case_id,
                    session_id=session.session_id,
                    kind=session.kind,
                    start=session.start,
                    end=session.end,
                    method=session.method.value,
                    status=session.status,
                    confirmed=side in session.confirmed_by,
                    with_name=other,
                )
            )
    return sorted(shown, key=lambda s: s.start)


async def _other_name(
    org: str, person: Person, schedule: CaseSchedule, deps: NotificationsDeps
) -> str | None:
    if person.kind == "supporter":
        case = await deps.records.case(org, schedule.case_id)
        return first_name(case.intake.client.display_name) if case else None
    supporter = await deps.records.supporter(org, schedule.supporter_id)
    return first_name(supporter.profile.display_name) if supporter else None
