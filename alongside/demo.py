"""``alongside demo``: the flow as far as it is built, on a fresh embedded server.

Two organisations register supporters with their vetting evidence and take
client intakes; the rules service decides eligibility; matching offers each
client explained proposals, and clients decline, choose (then every party
consents and the match becomes active), change supporter or refuse the service,
while a client nobody can serve is waitlisted with the reason. An ops person
publishes a stricter ruleset live, the services refuse what they must, and an
outside subscriber that knows only ``contracts/`` follows the events. Exits 0
when everything behaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import nats
from nats.aio.client import Client as Nats
from nats.errors import TimeoutError as NatsTimeoutError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from alongside import console_demo, people_demo, sample, services
from alongside.calendars import calendar_for
from alongside.client import AlongsideClient
from contracts import subjects
from contracts.envelope import Command, RawEnvelope, wrap
from contracts.intake import (
    ChangeCaseStage,
    ClientErased,
    Contact,
    EraseClient,
    ExportPersonData,
    FamilyOrFriend,
    GiveConsent,
    Method,
    NameSupportPerson,
    PersonData,
    PersonDataExported,
    Stage,
    WithdrawConsent,
)
from contracts.matching import (
    AcceptProposal,
    ChangeSupporter,
    DeclineProposals,
    MatchProposed,
    RefuseService,
)
from contracts.records import CaseMatch, CaseSchedule, Session
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import Kind, RulesDecision, SupporterEligibilityDecided
from contracts.scheduling import (
    BookSession,
    ConfirmMeeting,
    GoAhead,
    ProposeMeetingTime,
    RecordAttendance,
    RecordFrequencyAgreement,
    SchedulingPolicy,
)
from runtime import bus, metrics, topology, tracing
from runtime.access import ADMIN, SERVICE_NEEDS, SYSTEM_USER, AuthDir
from runtime.clock import SYSTEM, Clock
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats
from runtime.registry import register
from runtime.settings import Settings
from runtime.state import DecisionLogReader, DecisionReader
from runtime.store import RecordStore, bound_store
from runtime.vault import Vault, dead_letters_sealer
from services.rules import bundle, publishing
from services.rules.adapters import RulesStore

ORGS = ("harbour-ombudsman", "fair-work-scheme")
SUPPORTERS_PER_ORG = 25
CLIENTS_PER_ORG = 5

console = Console(highlight=False)


class DemoFailed(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


async def _accepted(client: AlongsideClient, org: str, command: Command) -> CommandAccepted:
    reply = await client.submit(org, command)
    if not isinstance(reply, CommandAccepted):
        said = "; ".join(f"{e.field}: {e.reason}" for e in reply.errors)
        raise DemoFailed(f"{command.type_name} was refused: {said}")
    return reply


# Called with the demo's server and keys before anything runs (CI records the traffic).
Tap = Callable[[str, AuthDir], Awaitable[None]]


async def run_demo(
    seed: int, clock: Clock = SYSTEM, tap: Tap | None = None, serve_port: int | None = None
) -> int:
    """``serve_port``: afterwards, keep the console serving the demo's data there, with
    everything else running, until interrupted."""
    with tempfile.TemporaryDirectory(prefix="alongside-demo-") as state:
        try:
            await _demo(Path(state), seed, clock, tap, serve_port)
        except DemoFailed as failure:
            console.print(f"[bold red]demo failed:[/] {failure}")
            return 1
    return 0


async def _demo(
    state: Path, seed: int, clock: Clock, tap: Tap | None, serve_port: int | None
) -> None:
    rng = random.Random(seed)
    # The organisations work in their scheduling time zone: "today" is their date.
    today = clock().astimezone(ZoneInfo(SchedulingPolicy().time_zone)).date()
    console.rule("[bold]Alongside demo")
    auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(clock().timestamp()))
    with EmbeddedNats(state, auth=auth) as server:
        console.print(
            f"Embedded nats-server at {server.url} (JetStream, sync_interval: always;"
            " auth on: every service and organisation connects as its own user)"
        )
        # People's mail is caught on loopback and kept in the working folder, after the demo.
        catcher = people_demo.catcher(clock)
        console.print(
            f"Mail to people is caught at {catcher.url}; each message is kept as an .eml "
            f"file in {catcher.folder}"
        )
        # The services seal what they keep with the key made beside the demo's own auth.
        settings = Settings(
            master_key_file=auth.path / "master.key", smtp_url=catcher.url, notify_sweep_s=0.5
        )
        # The console (step 11) serves people's pages too: their links name its address.
        port = serve_port or console_demo.free_port()
        pages = f"http://127.0.0.1:{port}"
        if tap is not None:
            await tap(server.url, auth)
        nc = await bus.connect(server.url, "alongside-demo", auth.credentials(ADMIN))
        system = await bus.connect(server.url, "alongside-demo", auth.credentials(SYSTEM_USER))
        await topology.provision(nc.jetstream(), settings)
        # Spans kept here to show in step 8; a deployment sends them over OTLP.
        spans = InMemorySpanExporter()
        running = await services.start(
            server.url,
            list(services.SERVICES),
            settings,
            clock,
            credentials=auth.credentials,
            span_exporter=spans,
        )
        console.print(f"Services running: {', '.join(services.SERVICES)}\n")
        client = AlongsideClient(nc, source="alongside/demo", clock=clock)
        vault = Vault.of(nc.jetstream(), settings)  # to read what the services sealed
        decisions = DecisionReader(await nc.jetstream().key_value(topology.DECISIONS_BUCKET), vault)
        credentials = Credentials(
            await nc.jetstream().key_value(topology.CREDENTIALS_BUCKET),
            nc.jetstream(),
            auth,
            system,
            clock,
        )
        try:
            await _organisations(client, nc, credentials, state, clock)
            await people_demo.configure(client, ORGS, pages, console.print)
            await _register_everyone(client, rng, today)
            eligible = await _eligibility(decisions)
            await _matching(client, nc, decisions, today, vault)
            await _scheduling(client, nc, vault, clock)
            await _publish_live(client, nc, decisions, eligible, clock, vault)
            await _refusals(client, nc, vault, clock)
            await _outside_subscriber(server.url, state, credentials)
            await _operators_view(client, running, spans, vault)
            await _subject_access(client)
            await _erasure(client, nc, vault)
            console.print("\n[bold]11. The console: HTTP API, today's lists, reports, pages[/]")
            try:
                stop_console = await console_demo.show(
                    console.print,
                    nc,
                    server.url,
                    auth,
                    credentials,
                    state,
                    settings,
                    clock,
                    ORGS[0],
                    port,
                    serving=serve_port is not None,
                )
                console.print("\n[bold]12. People act for themselves, and hear about it[/]")
                await people_demo.show(console.print, client, catcher, pages, ORGS[0], clock)
            except RuntimeError as failure:
                raise DemoFailed(str(failure)) from None
            console.rule("[bold green]demo complete")
            if serve_port is not None:
                console.print(
                    "The console and the services keep running with the demo's "
                    "data; Ctrl-C to stop."
                )
                stopping = asyncio.Event()
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
                await stopping.wait()  # or Ctrl-C, which cancels this
            stop_console()
        finally:
            await running.stop()
            await system.close()
            await nc.close()
            catcher.stop()


async def _organisations(
    client: AlongsideClient, nc: Nats, credentials: Credentials, state: Path, clock: Clock
) -> None:
    console.print("[bold]0. The organisations sharing this deployment[/]")
    for org, name in zip(ORGS, ("Harbour Ombudsman", "Fair Work Scheme"), strict=True):
        await register(nc.jetstream(), org, name, Settings(), clock)
        issued = await credentials.issue(org, "subscriber", FEED)
        _creds_file(state, org).write_text(issued.text)
        console.print(
            f"  registered {org} ({name}); its subscriber credential: "
            f"{_creds_file(state, org).name} (its events only)"
        )
    typo = "harbor-ombudsman"
    reply = await client.submit(typo, sample.intake(random.Random(0), "case-typo"))
    expect(isinstance(reply, CommandRejected), "an intake for an unregistered org was accepted")
    _print_rejection(f"an intake for {typo!r} (a typo)", reply)
    console.print()


# Gaps in some supporters' vetting, so the eligibility rules have something to say.
VETTING_GAPS = {"s000": "record_check", "s001": "interview", "s002": "training"}


async def _register_everyone(client: AlongsideClient, rng: random.Random, today: date) -> None:
    console.print("[bold]1. Supporters, their vetting evidence, and client intakes[/]")
    with Progress(console=console, transient=True) as progress:
        for org in ORGS:
            task = progress.add_task(f"  {org}", total=SUPPORTERS_PER_ORG + CLIENTS_PER_ORG)
            for n in range(SUPPORTERS_PER_ORG):
                supporter_id = f"s{n:03d}"
                await _accepted(client, org, sample.supporter(rng, supporter_id, reachable=True))
                for evidence in sample.vetting(rng, supporter_id, today):
                    if VETTING_GAPS.get(supporter_id) != evidence.evidence.kind:
                        await _accepted(client, org, evidence)
                progress.advance(task)
            for n in range(CLIENTS_PER_ORG):
                await _accepted(client, org, sample.intake(rng, f"case-{n:02d}", reachable=True))
                progress.advance(task)
    for org in ORGS:
        console.print(
            f"  {org}: {SUPPORTERS_PER_ORG} supporters with their vetting evidence "
            f"(three with a gap), {CLIENTS_PER_ORG} client intakes"
        )


async def _wait_for_decision(
    decisions: DecisionReader,
    org: str,
    kind: Kind,
    subject_id: str,
    until: Callable[[RulesDecision], bool] = lambda _: True,
) -> RulesDecision:
    for _ in range(200):
        decision, _ = await decisions.get(org, kind, subject_id)
        if decision is not None and until(decision):
            return decision
        await asyncio.sleep(0.05)
    raise DemoFailed(f"no {kind.value} decision for {org}/{subject_id}")


async def _eligibility(decisions: DecisionReader) -> set[str]:
    org = ORGS[0]
    console.print(f"\n[bold]2. Eligibility, decided by the rules service[/] ({org})")
    table = Table("supporter", "decision", "why", "lapses on", "ruleset version")
    eligible = set()
    for n in range(SUPPORTERS_PER_ORG):
        supporter_id = f"s{n:03d}"
        decision = await _wait_for_decision(decisions, org, Kind.ELIGIBILITY, supporter_id)
        if decision.outcome == "eligible":
            eligible.add(supporter_id)
        if n < 6:
            why = "; ".join(f.reason for f in decision.fired) or "every vetting requirement holds"
            table.add_row(
                supporter_id,
                decision.outcome,
                escape(why),
                str(decision.lapses_on or "-"),
                decision.ruleset.version,
            )
    console.print(table)
    console.print(f"  {len(eligible)} of {SUPPORTERS_PER_ORG} supporters eligible")
    expect(len(eligible) < SUPPORTERS_PER_ORG, "the vetting gaps made no one ineligible")
    return eligible


async def _matching(
    client: AlongsideClient, nc: Nats, decisions: DecisionReader, today: date, vault: Vault
) -> None:
    org = ORGS[0]
    console.print(f"\n[bold]3. Matching: explained proposals and the client's choices[/] ({org})")
    matches = await bound_store(nc.jetstream(), topology.MATCHES_BUCKET, CaseMatch, vault)

    async def state(case_id: str, until: Callable[[CaseMatch], bool]) -> CaseMatch:
        for _ in range(300):
            stored, _ = await matches.load(org, case_id)
            if stored is not None and stored.outbox is None and until(stored.record):
                return stored.record
            await asyncio.sleep(0.05)
        raise DemoFailed(f"matching of {case_id} did not get there")

    settled = {"proposed", "waitlisted"}
    cases = [
        await state(f"case-{n:02d}", lambda m: m.status in settled) for n in range(CLIENTS_PER_ORG)
    ]
    console.print(
        f"  {CLIENTS_PER_ORG} intakes -> "
        f"{sum(m.status == 'proposed' for m in cases)} offered supporters at once"
    )
    # Two English-speaking clients open to any method: enough supporters to show the choices.
    for case_id in ("case-a", "case-b"):
        story = sample.intake(random.Random(case_id), case_id, reachable=True)
        await _accepted(
            client,
            org,
            story.model_copy(
                update={
                    "client": story.client.model_copy(
                        update={
                            "languages": ["en"],
                            "methods": list(Method),
                            "gender_preference": None,
                        }
                    )
                }
            ),
        )
    first, second = [await state(c, lambda m: m.status in settled) for c in ("case-a", "case-b")]
    proposed = [m for m in cases if m.status == "proposed" and m.case_id != "case-01"]
    expect(bool(proposed) and first.status == second.status == "proposed", "no proposals")
    third = proposed[0]
    _show(first, "proposals, best first, each holding one of the supporter's slots")

    await _accepted(client, org, DeclineProposals(case_id=first.case_id))
    again = await state(first.case_id, lambda m: m.round == 2 or m.status == "waitlisted")
    declined = [o.supporter_id for o in first.proposals]
    expect(not {o.supporter_id for o in again.proposals} & set(declined), "a declined supporter")
    _show(again, f"declined {', '.join(declined)}: new proposals, never those again")

    chosen = again.proposals[0].supporter_id
    await _accepted(client, org, AcceptProposal(case_id=first.case_id, supporter_id=chosen))
    console.print(
        f"  {first.case_id}: the client chooses {chosen}; matching names them as the "
        "support person and waits for every party's consent"
    )
    await _wait_for_named(client, org, first.case_id)
    awaited: dict[str, Callable[[RulesDecision], bool]] = {
        "client": lambda d: d.fired[0].reason.endswith("from respondent."),
        "respondent": lambda d: d.outcome == "active",
    }
    for party, until in awaited.items():
        await _accepted(
            client,
            org,
            GiveConsent(
                case_id=first.case_id,
                party_id=party,
                stages=[Stage.ENTRY, Stage.INVESTIGATION],
                given_on=today,
            ),
        )
        decision = await _wait_for_decision(decisions, org, Kind.CONSENT, first.case_id, until)
        colour = "green" if decision.outcome == "active" else "yellow"
        console.print(
            f"  {first.case_id}: {party} consents -> [{colour}]{decision.outcome}[/]: "
            f"{escape(decision.fired[0].reason)}"
        )
    await state(first.case_id, lambda m: m.status == "active")
    console.print(
        f"  {first.case_id}: match with {chosen} [green]active[/]; scheduling is asked "
        "for a first meeting (MatchActivated)"
    )
    await _accepted(client, org, ChangeCaseStage(case_id=first.case_id, stage=Stage.INVESTIGATION))
    console.print(f"  {first.case_id}: moves from entry to investigation (consent covers it)")

    leaving = second.proposals[0].supporter_id
    await _accepted(client, org, AcceptProposal(case_id=second.case_id, supporter_id=leaving))
    await _accepted(client, org, ChangeSupporter(case_id=second.case_id))
    changed = await state(second.case_id, lambda m: m.round == 2 or m.status == "waitlisted")
    expect(leaving not in {o.supporter_id for o in changed.proposals}, "the previous supporter")
    _show(changed, f"accepted {leaving}, then asked for someone else: the match ended")

    await _accepted(client, org, RefuseService(case_id=third.case_id))
    refused = await state(third.case_id, lambda m: m.status == "refused")
    console.print(
        f"  {refused.case_id}: the client refuses the service -> case closed, "
        f"{len(third.proposals)} holds released"
    )

    niue = sample.intake(random.Random(4), "case-niue")
    niue = niue.model_copy(update={"client": niue.client.model_copy(update={"languages": ["niu"]})})
    await _accepted(client, org, niue)
    waiting = await state("case-niue", lambda m: m.status == "waitlisted")
    console.print(
        f"  case-niue: speaks only Niuean -> [yellow]waitlisted[/]: "
        f"{escape(waiting.waitlist_reason or '')}"
    )

    family = FamilyOrFriend(
        kind="family", display_name="Aunt of the client", contact=Contact(phone="+64 21 555 0101")
    )
    await _accepted(client, org, NameSupportPerson(case_id="case-01", support_person=family))
    for party in ("client", "respondent"):
        await _accepted(
            client,
            org,
            GiveConsent(case_id="case-01", party_id=party, stages=[Stage.ENTRY], given_on=today),
        )
    await _accepted(
        client, org, WithdrawConsent(case_id="case-01", party_id="respondent", withdrawn_on=today)
    )
    suspended = await _wait_for_decision(
        decisions, org, Kind.CONSENT, "case-01", lambda d: d.outcome == "suspended"
    )
    console.print(
        "  case-01: a family member named; both parties consent, then the respondent withdraws "
        f"-> [red]{suspended.outcome}[/]: {suspended.fired[0].reason}"
    )


async def _wait_for_named(client: AlongsideClient, org: str, case_id: str) -> None:
    for _ in range(200):
        async for event in client.events(org, idle_s=0.1):
            if event.type == "SupportPersonNamed" and event.data["case_id"] == case_id:
                return
        await asyncio.sleep(0.05)
    raise DemoFailed(f"no support person named for {case_id}")


def _show(match: CaseMatch, what: str) -> None:
    console.print(f"  {match.case_id}: {what}")
    table = Table("supporter", "score", "why", box=None, padding=(0, 2))
    for offer in match.proposals:
        table.add_row(offer.supporter_id, f"{offer.score:g}", escape(offer.explanation))
    if not match.proposals:
        table.add_row("-", "-", escape(f"waitlisted: {match.waitlist_reason}"))
    console.print(table)


async def _scheduling(client: AlongsideClient, nc: Nats, vault: Vault, clock: Clock) -> None:
    org, case_id = ORGS[0], "case-a"
    console.print(f"\n[bold]4. Scheduling: first meeting, sessions, boundaries[/] ({org})")
    journey = await scheduling_journey(client, nc, vault, org, case_id, clock, say=console.print)
    zone = journey.zone
    reminder = await _next_event(client, org, "SessionReminderDue")
    expect(reminder.data["session_id"] == journey.extra.session_id, "another session's reminder")
    console.print(
        f"  a day before it, the server publishes SessionReminderDue for "
        f"{reminder.data['session_id']} (a NATS message schedule: it fires even if "
        "no service is running)"
    )
    ics = await calendar_for(nc.jetstream(), org, vault, case=case_id, clock=clock)
    sessions = ics.count(b"BEGIN:VEVENT")
    console.print(
        f"  `alongside calendar --case {case_id}`: an iCalendar file of {sessions} "
        f"sessions, times in {zone.key}, no names"
    )


@dataclass(frozen=True)
class Journey:
    """Where the scheduling journey ended: the schedule, the extra session booked "tomorrow"
    (whose reminder is due in three seconds) and each refused request's refusing rules."""

    schedule: CaseSchedule
    extra: Session
    refused: dict[str, list[str]]
    zone: ZoneInfo


async def scheduling_journey(
    client: AlongsideClient,
    nc: Nats,
    vault: Vault,
    org: str,
    case_id: str,
    clock: Clock,
    say: Callable[[str], None] = lambda _: None,
    notes: str = "Wants to talk through the hearing.",
) -> Journey:
    """From an active match: the first meeting (moved to moments from now, confirmed, held),
    the go-ahead with weekly sessions to the funded end, then session requests judged by the
    boundaries rules. Runs the same at any moment ``clock`` says it is: the tests run it on
    every day of a week, at 23:59 local time, and across both daylight-saving changes."""
    schedules = await bound_store(nc.jetstream(), topology.SCHEDULES_BUCKET, CaseSchedule, vault)
    schedule = await _until(lambda: _load(schedules, org, case_id), f"no schedule for {case_id}")
    zone = ZoneInfo(SchedulingPolicy().time_zone)
    offered = next((s for s in schedule.sessions if s.kind == "initial_meeting"), None)
    if offered is not None:
        say(
            f"  {case_id}: first meeting offered at a time both are free: "
            f"{_when(offered.start, zone)} by {offered.method.value}"
        )
    else:
        say(f"  {case_id}: their weekly availability does not overlap")
    start = clock() + timedelta(seconds=2)
    await _accepted(client, org, ProposeMeetingTime(case_id=case_id, by="supporter", start=start))
    await _accepted(client, org, ConfirmMeeting(case_id=case_id, by="client"))
    say(
        f"  the supporter proposes {_when(start, zone)} instead (moments from now, for the "
        "demo); the client confirms -> booked"
    )
    booked = await _until(
        lambda: _load(
            schedules,
            org,
            case_id,
            lambda s: any(x.kind == "initial_meeting" and x.status == "booked" for x in s.sessions),
        ),
        "the meeting was not booked",
    )
    meeting = next(
        s for s in booked.sessions if s.kind == "initial_meeting" and s.status == "booked"
    )
    await clock.sleep_until(meeting.start + timedelta(seconds=0.2))
    await _accepted(
        client,
        org,
        RecordAttendance(case_id=case_id, session_id=meeting.session_id, outcome="completed"),
    )
    next_week = (clock().astimezone(zone) + timedelta(days=7)).replace(
        hour=18, minute=0, second=0, microsecond=0
    )
    await _accepted(client, org, GoAhead(case_id=case_id, first_session=next_week))
    going = await _until(
        lambda: _load(schedules, org, case_id, lambda s: s.status == "going_ahead"), "no sessions"
    )
    regular = [s for s in going.sessions if s.kind == "regular"]
    say(
        f"  the meeting is held; the client goes ahead -> {len(regular)} weekly sessions, "
        f"{_when(regular[0].start, zone, day=True)}, until the funded end {going.service_ends_on}"
    )

    # Reminders go out a day ahead: this one is due in three seconds.
    soon = clock() + timedelta(days=1, seconds=3)
    method = going.method or Method.PHONE

    def book(
        start: datetime, minutes: int = 60, purposes: tuple[str, ...] = (), notes: str | None = None
    ) -> BookSession:
        extra = {"purposes": list(purposes)} if purposes else {}
        return BookSession(
            case_id=case_id, start=start, minutes=minutes, method=method, notes=notes, **extra
        )

    refused: dict[str, list[str]] = {}

    async def refusal(what: str, command: BookSession) -> None:
        reply = await client.submit(org, command)
        expect(isinstance(reply, CommandRejected), f"{what} was booked")
        assert isinstance(reply, CommandRejected)
        refused[what] = [e.field for e in reply.errors]
        say(_rejection(f"a session request ({what})", reply))

    # A week is any seven days in a row: tomorrow is within a week of the meeting just held
    # and of the first weekly session, whatever weekday today is.
    await refusal("an extra session tomorrow", book(soon))
    await _accepted(client, org, RecordFrequencyAgreement(case_id=case_id, sessions_per_week=2))
    say("  both agree to meet up to twice a week (RecordFrequencyAgreement)")
    await refusal("help with a legal letter", book(soon, purposes=("legal_advice",)))
    # Not on the peer role's list, in whatever words: the boundaries allow only what is.
    await refusal(
        "someone to speak for me at the hearing",
        book(soon, purposes=("listening", "represent_me_at_the_hearing")),
    )
    await refusal("a 20-minute session", book(soon, minutes=20))
    await _accepted(client, org, book(soon, notes=notes))
    say("  the extra session tomorrow: booked, its notes kept sealed with the client's key")
    await refusal("a third session within a week", book(soon + timedelta(hours=2)))
    final = await _until(
        lambda: _load(
            schedules,
            org,
            case_id,
            lambda s: any(x.kind == "extra" and x.status == "booked" for x in s.sessions),
        ),
        "the extra session was not booked",
    )
    extra = next(s for s in final.sessions if s.kind == "extra" and s.status == "booked")
    return Journey(final, extra, refused, zone)


async def _next_event(client: AlongsideClient, org: str, event_type: str) -> RawEnvelope:
    for _ in range(100):
        async for event in client.events(org, idle_s=0.1):
            if event.type == event_type:
                return event
        await asyncio.sleep(0.1)
    raise DemoFailed(f"no {event_type}")


async def _load(
    store: RecordStore[CaseSchedule],
    org: str,
    case_id: str,
    until: Callable[[CaseSchedule], bool] = lambda _: True,
) -> CaseSchedule | None:
    stored, _ = await store.load(org, case_id)
    return stored.record if stored and stored.outbox is None and until(stored.record) else None


async def _until(probe: Callable[[], Awaitable[CaseSchedule | None]], failure: str) -> CaseSchedule:
    for _ in range(200):
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise DemoFailed(failure)


def _when(moment: datetime, zone: ZoneInfo, day: bool = False) -> str:
    local = moment.astimezone(zone)
    return f"{local:%A}s at {local:%H:%M}" if day else f"{local:%a %d %b %H:%M:%S}"


async def _publish_live(
    client: AlongsideClient,
    nc: Nats,
    decisions: DecisionReader,
    eligible_before: set[str],
    clock: Clock,
    vault: Vault,
) -> None:
    org = ORGS[0]
    console.print(f"\n[bold]5. An ops person publishes {org}'s eligibility override, live[/]")
    console.print(
        "  rules/orgs/harbour-ombudsman/eligibility/override.yaml: "
        "two years of recovery, monthly supervision"
    )
    matches = await bound_store(nc.jetstream(), topology.MATCHES_BUCKET, CaseMatch, vault)
    open_before = {
        case_id: stored.record
        for _, case_id, stored, _ in await matches.each(org)
        if stored.record.status == "proposed"
    }
    store = RulesStore(await nc.jetstream().key_value(topology.RULES_BUCKET))
    document = publishing.prepare(bundle.DEFAULT_ROOT, org, Kind.ELIGIBILITY, clock=clock)
    live = await publishing.publish(nc.jetstream(), store, document, clock=clock)
    console.print(
        f"  checked, its cases passed, published: {org}.eligibility@{live.version} "
        f"(revision {live.revision})"
    )
    changed = []
    for n in range(SUPPORTERS_PER_ORG):
        supporter_id = f"s{n:03d}"
        decision = await _wait_for_decision(
            decisions,
            org,
            Kind.ELIGIBILITY,
            supporter_id,
            lambda d: d.ruleset.version == live.version,
        )
        if supporter_id in eligible_before and decision.outcome == "ineligible":
            changed.append((supporter_id, decision))
    console.print(
        f"  every supporter re-decided under {live.version} within moments; "
        f"eligible before, not any more: {len(changed)}"
    )
    expect(bool(changed), "the stricter override changed no one's eligibility")
    for supporter_id, decision in changed[:3]:
        console.print(f"    {supporter_id}: {escape('; '.join(f.reason for f in decision.fired))}")
    await _withdrawn(client, matches, open_before, {s for s, _ in changed})


async def _withdrawn(
    client: AlongsideClient,
    matches: RecordStore[CaseMatch],
    open_before: dict[str, CaseMatch],
    unfit: set[str],
) -> None:
    """Nobody unsafe is chosen: the open proposals naming a supporter who is no longer
    eligible are withdrawn, and each client is offered someone else (or waitlisted, saying
    why); a choice of a withdrawn supporter is refused with the rules' reason."""
    org = ORGS[0]
    affected = {
        case_id: [o.supporter_id for o in match.proposals if o.supporter_id in unfit]
        for case_id, match in open_before.items()
    }
    affected = {case_id: gone for case_id, gone in affected.items() if gone}
    expect(bool(affected), "no open proposal named a supporter the stricter rules excluded")
    reoffered = waitlisted = 0
    for case_id, gone in sorted(affected.items()):
        for _ in range(300):
            stored, _ = await matches.load(org, case_id)
            match = stored.record if stored and stored.outbox is None else None
            if match and not {o.supporter_id for o in match.proposals} & set(gone):
                break
            await asyncio.sleep(0.05)
        else:
            raise DemoFailed(f"{case_id}: the proposals of {', '.join(gone)} were not withdrawn")
        before = {o.supporter_id for o in open_before[case_id].proposals}
        fresh = [o.supporter_id for o in match.proposals if o.supporter_id not in before]
        if match.status == "proposed":
            reoffered += 1
            instead = f"offered {', '.join(fresh)} instead" if fresh else "the others stay"
        else:
            waitlisted += 1
            instead = f"[yellow]waitlisted[/]: {escape(match.waitlist_reason or '')}"
        console.print(f"  {case_id}: {', '.join(gone)} withdrawn (no longer eligible) -> {instead}")
    console.print(
        f"  proposals withdrawn in {len(affected)} cases: {reoffered} clients offered "
        f"others at once, {waitlisted} waitlisted with the reason"
    )
    case_id, gone = sorted(affected.items())[0]
    reply = await client.submit(org, AcceptProposal(case_id=case_id, supporter_id=gone[0]))
    expect(isinstance(reply, CommandRejected), "a withdrawn supporter was accepted")
    _print_rejection(f"{case_id} chooses the withdrawn {gone[0]} after all", reply)


async def _refusals(client: AlongsideClient, nc: Nats, vault: Vault, clock: Clock) -> None:
    org = ORGS[0]
    console.print("\n[bold]6. What the service refuses, and how it answers[/]")

    bad = GiveConsent(
        case_id="case-02",
        party_id="landlord",
        stages=[Stage.ENTRY],
        given_on=clock().astimezone(ZoneInfo(SchedulingPolicy().time_zone)).date(),
    )
    reply = await client.submit(org, bad)
    expect(isinstance(reply, CommandRejected), "a consent from a non-party was accepted")
    _print_rejection("consent from someone who is not a party", reply)

    envelope = json.loads(
        wrap(
            sample.intake(random.Random(1), "case-bad"), org=org, source="demo", time=clock()
        ).model_dump_json()
    )
    envelope["data"]["client"]["languages"] = ["English"]
    envelope["data"]["other_parties"] = []
    reply = await client.send_raw(org, "intake", "SubmitIntake", json.dumps(envelope).encode())
    expect(isinstance(reply, CommandRejected), "an invalid intake was accepted")
    _print_rejection("an intake with a bad language code and no other party", reply)

    command = sample.intake(random.Random(2), "case-twice")
    first = await client.submit(org, command, command_id="demo-same-id")
    second = await client.submit(org, command, command_id="demo-same-id")
    expect(
        first == second and isinstance(first, CommandAccepted),
        "a repeated command had a second effect",
    )
    console.print("  the same command sent twice: one case opened, the same reply both times")

    # One id, two different intakes, sent at the same moment: the id is claimed by one.
    replies = await asyncio.gather(
        client.submit(org, sample.intake(random.Random(6), "case-race-a"), command_id="demo-race"),
        client.submit(org, sample.intake(random.Random(7), "case-race-b"), command_id="demo-race"),
    )
    refused = [r for r in replies if isinstance(r, CommandRejected)]
    expect(len(refused) == 1, "one command id carried two different intakes")
    _print_rejection("the second of two different intakes sent at once with one id", refused[0])

    nested = b"[" * 20_000 + b"]" * 20_000
    reply = await client.send_raw(org, "intake", "SubmitIntake", nested)
    expect(isinstance(reply, CommandRejected), "a deeply nested message went unanswered")
    _print_rejection("a message nested 20,000 deep", reply)

    unkeyable = json.loads(
        wrap(
            sample.intake(random.Random(5), "case-odd-id"), org=org, source="demo", time=clock()
        ).model_dump_json()
    )
    unkeyable["id"] = "retry:1"
    reply = await client.send_raw(org, "intake", "SubmitIntake", json.dumps(unkeyable).encode())
    expect(isinstance(reply, CommandRejected), "a command id the store cannot key was accepted")
    _print_rejection("a command whose id cannot be a key ('retry:1')", reply)

    other = ORGS[1]
    body = wrap(
        sample.intake(random.Random(3), "case-x"), org=other, source="demo", time=clock()
    ).model_dump_json()
    reply = await client.send_raw(org, "intake", "SubmitIntake", body.encode())
    expect(isinstance(reply, CommandRejected), "a cross-organisation message was accepted")
    _print_rejection(f"a message for {other} sent on {org}'s subject", reply)

    reply = await client.send_raw(org, "intake", "SubmitIntake", b"{not json")
    expect(isinstance(reply, CommandRejected), "a malformed message was accepted")
    js = client.nc.jetstream()
    letter = await js.get_last_msg(
        topology.DEADLETTER_STREAM, subjects.dead_letter(org, "intake", subjects.OPERATOR)
    )
    kept = RawEnvelope.model_validate_json(letter.data or b"")
    opened = await bus.read_dead_letter(dead_letters_sealer(vault), kept)
    console.print(
        "  a malformed message: answered, and dead-lettered (its reason and bytes sealed "
        f"with the day's key) with the reason [italic]{escape(opened.reason)}[/]"
    )


def _rejection(what: str, reply: CommandRejected) -> str:
    """A refusal as people read it: each refusing field or rule, with its reason."""
    lines = [f"  refused {what}:"]
    lines += [f"    [yellow]{escape(e.field)}[/]: {escape(e.reason)}" for e in reply.errors]
    return "\n".join(lines)


def _print_rejection(what: str, reply: CommandAccepted | CommandRejected) -> None:
    assert isinstance(reply, CommandRejected)
    console.print(_rejection(what, reply))


FEED = "feed"  # the demo's subscriber credential of each organisation


def _creds_file(state: Path, org: str) -> Path:
    return state / f"{org}-feed.creds"


async def _outside_subscriber(url: str, state: Path, credentials: Credentials) -> None:
    console.print(
        "\n[bold]7. Outside subscribers that know only contracts/ and their "
        "organisation's credentials[/]"
    )
    table = Table("organisation", "event", "count")
    refusals = []
    for org, other in zip(ORGS, reversed(ORGS), strict=True):
        refused: list[str] = []

        async def on_error(error: Exception, said: list[str] = refused) -> None:
            said.append(str(error))

        nc = await nats.connect(
            url,
            user_credentials=str(_creds_file(state, org)),
            inbox_prefix=subjects.org_inbox(org, FEED),
            error_cb=on_error,
        )
        try:
            counts: Counter[str] = Counter()
            # through the durable consumer the operator made for it, named as it
            async for envelope in AlongsideClient(nc).events(org, durable=FEED):
                expect(envelope.org == org, f"{org}'s feed carried an event of {envelope.org}")
                counts[envelope.type] += 1
            for event_type, count in sorted(counts.items()):
                table.add_row(org, event_type, str(count))
            # The other organisation's events, commands and records: the server says no.
            await nc.subscribe(subjects.events(other))
            with contextlib.suppress(NatsTimeoutError):
                await nc.jetstream(timeout=1).stream_info(subjects.org_events_stream(other))
            with contextlib.suppress(NatsTimeoutError):
                await nc.request(
                    subjects.command(other, "intake", "SubmitIntake", FEED), b"{}", timeout=1
                )
            # Nor, being a subscriber, its own organisation's commands, or a consumer of its
            # own making (one could aim its events anywhere).
            with contextlib.suppress(NatsTimeoutError):
                await nc.request(
                    subjects.command(org, "intake", "ViewCase", FEED), b"{}", timeout=1
                )
            with contextlib.suppress(NatsTimeoutError):
                await nc.jetstream(timeout=1).add_consumer(
                    subjects.org_events_stream(org), durable_name="mine"
                )
            await nc.flush()
            await asyncio.sleep(0.2)
        finally:
            await nc.close()
        expect(
            len(refused) >= 5,
            f"{org}'s subscriber credential reached more than its feed: {refused}",
        )
        refusals.append((org, other, refused))
    console.print(table)
    console.print(
        "  each organisation's feed holds only its own events; none carries names or contacts"
    )
    for org, other, refused in refusals:
        console.print(
            f"  {org}'s subscriber credential on {other}'s subjects, its own "
            "organisation's commands and a consumer of its own, refused by the "
            "server:"
        )
        for said in refused:
            console.print(f"    {escape(said)}")
    # A credential revoked is refused at once, with no restart of anything.
    org = ORGS[0]
    await credentials.revoke(org, FEED)

    async def said_below(error: Exception) -> None:
        pass

    try:
        late = await nats.connect(
            url,
            user_credentials=str(_creds_file(state, org)),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=said_below,
        )
    except nats.errors.Error as error:
        console.print(
            f"  {org}'s credential revoked (alongside orgs revoke); connecting "
            f"with it now: {escape(str(error))}"
        )
    else:
        await late.close()
        raise DemoFailed(f"{org}'s revoked credential still connects")


async def _operators_view(
    client: AlongsideClient,
    running: services.Running,
    spans: InMemorySpanExporter,
    vault: Vault,
) -> None:
    """What an operator follows: one intake's trace across services, and the counters."""
    console.print("\n[bold]8. What an operator sees: one trace, and /metrics[/]")
    org = ORGS[0]
    trail = [e async for e in client.events(org) if e.data.get("case_id") == "case-00"]
    expect(bool(trail) and trail[0].traceparent is not None, "case-00 has no traced events")
    trace = str(trail[0].traceparent).split("-")[1]
    same = [e.type for e in trail if e.traceparent and e.traceparent.split("-")[1] == trace]
    console.print(
        f"  trace {trace[:12]}… of case-00's intake, through intake, rules and "
        f"matching: {', '.join(dict.fromkeys(same))}"
    )
    proposed = next((e for e in trail if e.type == MatchProposed.type_name), None)
    if proposed is None or proposed.traceparent is None:
        raise DemoFailed("case-00 has no traced proposal")
    running.flush_spans()
    lineage = tracing.lineage(spans.get_finished_spans(), proposed.traceparent)
    expect(len(lineage) >= 3, f"the proposal's spans do not lead back to the intake: {lineage}")
    console.print(
        "  its OpenTelemetry spans, from the proposal back to the intake "
        "(each the parent of the one above):"
    )
    for span in lineage:
        console.print(f"    {tracing.service_of(span):<22} {span.name.split('.', 2)[-1]}")
    await _decision_logged(client, org, vault)
    table = Table("counter (GET /metrics)", "labels", "value")
    for sample_ in _metric_samples():
        table.add_row(*sample_)
    console.print(table)


async def _subject_access(client: AlongsideClient) -> None:
    """A client asks for everything held about them: one command, every service's records,
    and a record that it was given (ids only)."""
    console.print("\n[bold]9. Privacy: a subject access request[/]")
    org = ORGS[0]
    reply = await client.request(org, ExportPersonData(person="client", subject_id="case-00"))
    if not isinstance(reply, PersonData):
        raise DemoFailed(f"ExportPersonData was not answered with the data: {reply}")
    kept = ", ".join(name for name, value in reply.held.items() if value is not None)
    console.print(
        f"  ExportPersonData for case-00: {len(json.dumps(reply.held))} bytes of JSON "
        f"from {kept}; nothing of it stored again"
    )
    recorded = await _next_event(client, org, PersonDataExported.type_name)
    console.print(
        f"  recorded as {recorded.type}: {recorded.data['person']} "
        f"{recorded.data['subject_id']}, asked by {recorded.data['requested_by']}"
    )


async def _erasure(client: AlongsideClient, nc: Nats, vault: Vault) -> None:
    """The client asks to be forgotten: their key is destroyed, so every copy of their data,
    sealed with it, is unreadable for good; what stays is ids, dates and outcomes."""
    console.print("\n[bold]10. Privacy: erasure[/]")
    org = ORGS[0]
    cases = [f"case-{n:02d}" for n in range(CLIENTS_PER_ORG)]
    states = {case_id: await _match_state(nc, vault, org, case_id) for case_id in cases}
    case_id = next((c for c, s in states.items() if s.status == "proposed"), cases[1])
    before = states[case_id]
    await _accepted(client, org, EraseClient(case_id=case_id))
    erased = await _next_event(client, org, ClientErased.type_name)
    console.print(
        f"  EraseClient {case_id}: its key destroyed, its case record removed, "
        f"{erased.type} published"
    )
    for _ in range(100):
        after = await _match_state(nc, vault, org, case_id)
        if after.status == "erased":
            break
        await asyncio.sleep(0.05)
    expect(after.status == "erased", f"matching did not end {case_id}")
    console.print(
        f"  matching's record of {case_id}: {before.status} -> {after.status}, "
        f"{len(before.proposals)} explained proposals -> {len(after.proposals)}; "
        f"the slots it held are free again"
    )
    again = await client.request(org, ExportPersonData(person="client", subject_id=case_id))
    expect(isinstance(again, CommandRejected), "an erased client's data was exported")
    assert isinstance(again, CommandRejected)
    console.print(f"  ExportPersonData for {case_id} now: {again.errors[0].reason}")
    console.print(
        "  a closed case goes the same way when its organisation's retention ends "
        "(`alongside orgs retention ORG DAYS`; seven years unless set)"
    )


async def _match_state(nc: Nats, vault: Vault, org: str, case_id: str) -> CaseMatch:
    matches = await bound_store(nc.jetstream(), topology.MATCHES_BUCKET, CaseMatch, vault)
    stored, _ = await matches.load(org, case_id)
    if stored is None:
        raise DemoFailed(f"matching holds nothing about {case_id}")
    return stored.record


async def _decision_logged(client: AlongsideClient, org: str, vault: Vault) -> None:
    """Why a supporter was found ineligible: the public event names no rule; its decision
    id resolves in the decision log, which only operators read."""
    latest = {
        e.data["supporter_id"]: e
        async for e in client.events(org)
        if e.type == SupporterEligibilityDecided.type_name
    }
    refused = [e for e in latest.values() if not e.data["eligible"]]
    expect(bool(refused), "no supporter is ineligible")
    event = refused[0]
    log = DecisionLogReader(client.nc.jetstream(), vault)
    logged = await log.find(org, str(event.data["decision_id"]))
    if logged is None:
        raise DemoFailed(f"decision {event.data['decision_id']} is not in the decision log")
    decision = logged.decision
    console.print(
        f"  the decision log (operators only; kept for the organisation's audit "
        f"period): {event.type} for {decision.subject_id} names no rule; its "
        f"decision_id {decision.decision_id} resolves to "
        f"(alongside rules explain --decision ID):"
    )
    for fired in decision.fired:
        console.print(f"    {fired.rule}: {escape(fired.reason)}")


def _metric_samples() -> list[tuple[str, str, str]]:
    wanted = {
        "alongside_events_published_total": {"IntakeReceived", "MatchProposed", "ClientWaitlisted"},
        "alongside_dead_letters_total": None,
        "alongside_commands_total": None,
    }
    rows = []
    for family in metrics.REGISTRY.collect():
        for sample_ in family.samples:
            types = wanted.get(sample_.name, set())
            if sample_.name not in wanted or (types and sample_.labels.get("type") not in types):
                continue
            if sample_.labels.get("org", ORGS[0]) != ORGS[0]:
                continue
            if (
                sample_.name == "alongside_commands_total"
                and sample_.labels["outcome"] != "rejected"
            ):
                continue
            labels = ", ".join(f"{k}={v}" for k, v in sorted(sample_.labels.items()))
            rows.append((sample_.name, labels, f"{sample_.value:g}"))
    return rows
