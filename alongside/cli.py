"""The ``alongside`` command: run the services, the demo, commands, events and contracts."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from importlib.metadata import version as package_version
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

import typer
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from alongside import (
    connection,
    console_cli,
    deadletters_cli,
    diagram,
    notifications_cli,
    rules_cli,
    services,
)
from alongside.client import RETRY_FOR_S, AlongsideClient, Unavailable, summarise
from alongside.mailcatcher import MailCatcher
from alongside.options import (
    EXIT_UNAVAILABLE,
    CliError,
    OrgOpt,
    read_text,
    valid_name,
    valid_org,
)
from contracts import catalogue
from contracts.envelope import Message, new_id
from contracts.records import CredentialRecord
from contracts.replies import CommandAccepted, CommandUnavailable
from contracts.scheduling import ConfigureScheduling, SchedulingPolicy
from runtime import bus, health, topology
from runtime.access import (
    ADMIN,
    SERVICE_NEEDS,
    SYSTEM_USER,
    AccessError,
    AuthDir,
    credential_name,
)
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats, adopt_data_without_auth
from runtime.logging import configure, get_logger
from runtime.registry import Registry, RegistryError, provision_registered, register
from runtime.settings import Settings
from runtime.vault import NoMasterKey, Vault, load_master_key

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
contracts_app = typer.Typer(no_args_is_help=True, help="The event catalogue.")
app.add_typer(contracts_app, name="contracts")
app.add_typer(rules_cli.app, name="rules")
app.add_typer(console_cli.app, name="console")
app.add_typer(deadletters_cli.app, name="deadletters")
app.add_typer(notifications_cli.app, name="notifications")
orgs_app = typer.Typer(no_args_is_help=True, help="The organisations using this deployment.")
app.add_typer(orgs_app, name="orgs")
auth_app = typer.Typer(no_args_is_help=True, help="The operator's keys (NATS decentralised auth).")
app.add_typer(auth_app, name="auth")

log = get_logger("alongside.cli")
T = TypeVar("T")


def _version(asked: bool) -> None:
    if asked:
        typer.echo(f"alongside {package_version('alongside')} (contracts {catalogue.VERSION})")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print this version and the contracts' version, and exit.",
        ),
    ] = False,
) -> None:
    pass


def _settings() -> Settings:
    settings = Settings()
    configure(settings.log_level, settings.log_json)
    return settings


@app.command()
def up(
    names: Annotated[
        list[str] | None, typer.Argument(help="Services to run (default: all).", show_default=False)
    ] = None,
) -> None:
    """Run the services and the console. With no ALONGSIDE_NATS_URL, start an embedded
    nats-server first."""
    settings = _settings()
    known = [*services.SERVICES, console_cli.NAME]
    unknown = sorted(set(names or []) - set(known))
    if unknown:  # before any server starts
        raise CliError(f"unknown service {', '.join(unknown)}; one of {', '.join(known)}")
    names = names or known
    if console_cli.NAME in names:
        console_cli.check(settings)
    asyncio.run(_up(settings, names))


async def _up(settings: Settings, names: list[str]) -> None:
    embedded = None
    url = settings.nats_url

    def credentials(service: str) -> Path | None:
        return settings.nats_credentials

    auth: AuthDir | None = None
    if url is None:
        lock_state_dir(settings)
        auth = embedded_auth(settings)
        embedded = EmbeddedNats(settings.state_dir, auth=auth)
        url = embedded.start()
        connection.url_file(settings).write_text(url)
        nc = await bus.connect(url, "alongside-provision", auth.credentials(ADMIN))
        await topology.provision(nc.jetstream(), settings)
        await provision_registered(nc.jetstream(), settings)
        await nc.close()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    running = services.Running()
    served = [name for name in names if name in services.SERVICES]
    catcher = None
    if embedded is not None and settings.smtp_url is None and "notifications" in served:
        # No mail server named: messages go to a catcher that keeps each as an .eml file.
        catcher = MailCatcher(settings.mail_path, remember=False)
        catcher.start()
        settings = settings.model_copy(update={"smtp_url": catcher.url})
    try:
        if settings.health_port is not None:
            # From before the services start, so readiness says "starting" meanwhile; held
            # here, since a task nothing refers to may be collected while it runs.
            process = health.Process(served, running.brokers, running.ready)
            running.tasks.append(
                asyncio.create_task(
                    health.serve(process, settings.health_host, settings.health_port)
                )
            )
        try:
            await services.start(
                url,
                served,
                settings,
                running=running,
                credentials=auth.credentials if auth else credentials,
            )
            if console_cli.NAME in names:
                load_master_key(settings.master_key_path)  # its sessions are signed with it
                running.tasks.append(asyncio.create_task(console_cli.serve(url, settings, auth)))
        except NoMasterKey as missing:
            raise CliError(str(missing)) from None
        typer.echo(f"alongside: {', '.join(names)} running on {url}; Ctrl-C to stop", err=True)
        if catcher is not None:
            typer.echo(
                f"alongside: mail to people is caught at {catcher.url}, each message saved "
                f"in {catcher.folder} (set ALONGSIDE_SMTP_URL for a real mail server)",
                err=True,
            )
        if console_cli.NAME in names:
            typer.echo(
                f"alongside: console at http://{settings.http_host}:{settings.http_port} "
                "(accounts: alongside console account EMAIL --name NAME "
                "--role ORG=coordinator)",
                err=True,
            )
        await stopping.wait()
    finally:
        await services.stop(running)  # what started, also when a later service failed to
        if catcher is not None:
            catcher.stop()
        if embedded is not None:
            connection.url_file(settings).unlink(missing_ok=True)
            embedded.stop()


def lock_state_dir(settings: Settings) -> None:
    """One embedded ``up`` per state folder: a second would start a second server on the
    same JetStream store. The lock goes with the process, however it ends."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    lock = (settings.state_dir / "up.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        running = connection.url_file(settings)
        at = f" at {running.read_text().strip()}" if running.exists() else ""
        raise CliError(
            f"`alongside up` is already running on {settings.state_dir}{at}; "
            "stop it, or set ALONGSIDE_STATE_DIR to another folder"
        ) from None
    _LOCKS.append(lock)  # held until the process ends


_LOCKS: list[IO[str]] = []


def embedded_auth(settings: Settings) -> AuthDir:
    """The embedded server's auth folder, made on first use: auth is on from the start."""
    auth = AuthDir(settings.auth_path)
    if not auth.exists():
        auth = AuthDir.init(settings.auth_path, SERVICE_NEEDS, int(SYSTEM().timestamp()))
        typer.echo(f"alongside: made the operator's keys and credentials in {auth.path}", err=True)
    else:  # a folder an earlier version made: its services may now need more
        auth.issue_services(SERVICE_NEEDS, int(SYSTEM().timestamp()))
    load_master_key(settings.master_key_path, create=True)  # a folder from before it
    if adopt_data_without_auth(settings.state_dir, auth.account_key):
        typer.echo("alongside: moved the data stored before auth into the account", err=True)
    return auth


@app.command()
def provision() -> None:
    """Create or update every stream and KV bucket at ALONGSIDE_NATS_URL."""
    settings = _settings()

    async def run() -> None:
        nc = await connection.connect(settings, "alongside-provision")
        await topology.provision(nc.jetstream(), settings)
        await provision_registered(nc.jetstream(), settings)
        await nc.close()

    asyncio.run(run())
    typer.echo("provisioned")


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the sample population.")] = 7,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Afterwards keep the console (ALONGSIDE_HTTP_PORT, 8000) and the "
            "services running with the demo's data, until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Walk the whole flow on a fresh embedded server with two organisations."""
    from alongside.demo import run_demo

    configure("ERROR", json=True)  # expected refusals would log warnings
    port = Settings().http_port if serve else None
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run_demo(seed, serve_port=port)))


def _command_body(
    command_type: str, org: str, document: dict[str, Any], command_id: str | None = None
) -> bytes:
    """A full envelope is sent as it is; a bare payload is put in a new envelope (its id
    ``command_id``, else a new one)."""
    if "specversion" in document:
        return json.dumps(document).encode()
    model = catalogue.COMMANDS[command_type]
    envelope = {
        "specversion": "1.0",
        "id": command_id or new_id(),
        "type": command_type,
        "source": "alongside/cli",
        "org": org,
        "time": SYSTEM().isoformat(),
        "schemaversion": model.schema_version,
        "data": document,
    }
    return json.dumps(envelope).encode()


@app.command()
def submit(
    command: Annotated[str, typer.Argument(help="Command type, e.g. SubmitIntake.")],
    file: Annotated[
        str, typer.Argument(help="JSON file with the payload or envelope; - for stdin.")
    ],
    org: OrgOpt,
    command_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="The command's id for a bare payload (to send a command again: the "
            "service answers an id once in effect); default: a new one.",
        ),
    ] = None,
    retry_for: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to keep sending it again, the same id, while the service "
            "cannot carry it out just now or does not answer; 0: once.",
        ),
    ] = RETRY_FOR_S,
) -> None:
    """Send one command and print its reply: exit 1 when it is rejected, 75 when it could not
    be carried out just now (send the same command, with the same --id, again)."""
    settings = _settings()
    by_name = {name.lower(): name for name in catalogue.COMMANDS}
    command_type = by_name.get(command.lower())
    if command_type is None:
        raise CliError(f"unknown command {command!r}; one of {', '.join(catalogue.COMMANDS)}")
    text = sys.stdin.read() if file == "-" else read_text(Path(file))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{file}: not JSON ({error})") from error
    model = catalogue.COMMANDS[command_type]

    async def run() -> int:
        nc = await connection.connect(settings, "alongside-cli")
        body = _command_body(command_type, org, document, command_id)
        try:
            client = AlongsideClient(nc, sender=connection.principal(settings).sender)
            reply: Message = await client.send_raw(
                org, model.service, command_type, body, retry_for=retry_for
            )
        except Unavailable as unavailable:
            reply = unavailable.reply
        except (NatsTimeoutError, NoRespondersError) as error:
            said = "no answer" if isinstance(error, NatsTimeoutError) else "no service to answer"
            again = (
                "the same envelope again"
                if "specversion" in document
                else f"the same command again with --id {json.loads(body)['id']}"
            )
            typer.echo(
                f"alongside: {model.service}: {said}; nothing refused it: send {again}", err=True
            )
            return EXIT_UNAVAILABLE
        finally:
            await nc.close()
        typer.echo(reply.model_dump_json(indent=2))
        if isinstance(reply, CommandUnavailable):
            return EXIT_UNAVAILABLE
        return 0 if isinstance(reply, CommandAccepted) else 1

    code = asyncio.run(run())
    if code:
        raise typer.Exit(code)


@app.command()
def events(
    org: OrgOpt,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep waiting for new events.")
    ] = False,
) -> None:
    """Print an organisation's events, one JSON line each. With a subscriber's or an
    integration's credential, its own feed: from where it stopped, each event acknowledged."""
    settings = _settings()
    reader = connection.principal(settings)
    durable = reader.sender if reader.kind in ("subscriber", "integration") else None

    async def run() -> None:
        nc = await connection.connect(settings, "alongside-events")
        try:

            def skipped(sequence: int, why: str) -> None:
                typer.echo(f"alongside: skipped event {sequence}: {why}", err=True)

            reading = AlongsideClient(nc).events(
                org, follow, on_unreadable=skipped, durable=durable
            )
            async for envelope in reading:
                typer.echo(json.dumps(summarise(envelope), default=str))
        except NotFoundError:
            raise CliError(
                f"organisation {org!r} has no events stream here: is it "
                "registered? (alongside orgs list)"
            ) from None
        finally:
            await nc.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSON lines, one SubmitIntake payload each.")],
    org: OrgOpt,
) -> None:
    """Import many intakes and match them together (exit 1 if any line was refused, 75 if
    any could not be carried out just now: run the same import again)."""
    from rich.progress import Progress

    from alongside.importer import import_intakes

    settings = _settings()
    text = read_text(file)
    lines = sum(1 for line in text.splitlines() if line.strip())

    async def run() -> Any:
        nc = await connection.connect(settings, "alongside-import")
        try:
            registry = Registry(await nc.jetstream().key_value(topology.REGISTRY_BUCKET), SYSTEM)
            refusal = await registry.refusal(org)
            if refusal is not None:
                raise CliError(refusal)
            with Progress(transient=True) as progress:
                sending = progress.add_task("intakes submitted", total=lines)
                matching = progress.add_task("waiting for matching policies", total=None)
                return await import_intakes(
                    AlongsideClient(
                        nc, source="alongside/import", sender=connection.principal(settings).sender
                    ),
                    org,
                    text,
                    submitted=lambda: progress.advance(sending),
                    ready=lambda said: progress.update(matching, description=said[:60]),
                )
        finally:
            await nc.close()

    try:
        result = asyncio.run(run())
    except Unavailable as unavailable:  # matching could not assign the batch just now
        typer.echo(f"alongside: {unavailable.reply.reason} (run the same import again)", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    except (NatsTimeoutError, NoRespondersError):  # nor answered, sent again the same ids
        typer.echo("alongside: matching did not answer (run the same import again)", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    for number, errors in result.refused:
        for error in errors:
            typer.echo(f"{file}:{number}: {error.field}: {error.reason}", err=True)
    for number in result.unavailable:
        typer.echo(f"{file}:{number}: could not be carried out just now", err=True)
    assigned = result.assigned
    typer.echo(
        f"{result.submitted} intakes imported as {result.batch_id}; "
        + (
            f"{assigned.proposed} given proposals, {assigned.waitlisted} waitlisted; "
            if assigned
            else ""
        )
        + f"{len(result.refused)} lines refused"
        + (
            f", {len(result.unavailable)} not carried out just now (run the same import again)"
            if result.unavailable
            else ""
        )
    )
    if result.refused:
        raise typer.Exit(1)
    if result.unavailable:
        raise typer.Exit(EXIT_UNAVAILABLE)


@app.command()
def proposals(
    case_id: Annotated[str, typer.Argument(help="The case.")],
    org: OrgOpt,
) -> None:
    """Show a case's matching state: each proposal with its explanation, or why it waits."""
    from contracts.records import CaseMatch
    from runtime.store import bound_store

    settings = _settings()

    async def run() -> Any:
        nc = await connection.connect(settings, "alongside-proposals")
        try:
            js = nc.jetstream()
            matches = await bound_store(
                js, topology.MATCHES_BUCKET, CaseMatch, Vault.of(js, settings)
            )
            stored, _ = await matches.load(org, case_id)
            return stored.record if stored else None
        finally:
            await nc.close()

    match = asyncio.run(run())
    if match is None:
        typer.echo(f"no matching state for case {case_id} in {org}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{case_id}: {match.status}"
        + (f" ({match.waitlist_reason})" if match.waitlist_reason else "")
    )
    for offer in match.proposals:
        typer.echo(
            f"  {offer.supporter_id}  score {offer.score:g}  held until "
            f"{offer.held_until:%Y-%m-%d %H:%M}  {offer.explanation}"
        )


@app.command()
def calendar(
    org: OrgOpt,
    case: Annotated[str | None, typer.Option(help="A client's case: their sessions.")] = None,
    supporter: Annotated[
        str | None, typer.Option(help="A supporter: their sessions, supervision and groups.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
) -> None:
    """Write an iCalendar (.ics) file of one client's or one supporter's sessions."""
    if (case is None) == (supporter is None):
        raise typer.BadParameter("give exactly one of --case or --supporter")
    from alongside.calendars import NotFound, calendar_for

    settings = _settings()

    async def run() -> bytes:
        nc = await connection.connect(settings, "alongside-calendar")
        try:
            js = nc.jetstream()
            return await calendar_for(
                js, org, Vault.of(js, settings), case=case, supporter=supporter
            )
        except NotFound as missing:  # an empty calendar would look like "no sessions yet"
            raise CliError(str(missing)) from None
        finally:
            await nc.close()

    ics = asyncio.run(run())
    if output is None:
        sys.stdout.write(ics.decode())
    else:
        output.write_bytes(ics)
        typer.echo(f"wrote {output}", err=True)


async def _registry(settings: Settings) -> tuple[Any, Registry]:
    nc = await connection.connect(settings, "alongside-orgs")
    return nc, Registry(await nc.jetstream().key_value(topology.REGISTRY_BUCKET), SYSTEM)


def _on_registry(
    settings: Settings, act: Callable[[Registry, JetStreamContext], Awaitable[str]]
) -> None:
    async def run() -> str:
        nc, registry = await _registry(settings)
        try:
            return await act(registry, nc.jetstream())
        except RegistryError as error:
            raise CliError(str(error)) from None
        finally:
            await nc.close()

    typer.echo(asyncio.run(run()))


@orgs_app.command("add")
def orgs_add(
    org: Annotated[
        str, typer.Argument(help="Organisation token, e.g. harbour-ombudsman.", callback=valid_org)
    ],
    name: Annotated[str, typer.Option(help="The organisation's name, as people say it.")],
    time_zone: Annotated[
        str | None,
        typer.Option(
            help="Its IANA time zone (e.g. Pacific/Auckland), set through "
            "ConfigureScheduling by the scheduling service; if it is not "
            "running, the organisation is registered all the same, and the "
            "command to finish is printed (exit 75)."
        ),
    ] = None,
) -> None:
    """Register an organisation (or enable a disabled one): its commands are accepted."""
    settings = _settings()
    policy = None
    if time_zone is not None:
        try:
            policy = SchedulingPolicy(time_zone=time_zone)
        except ValidationError as error:
            raise CliError(f"--time-zone: {error.errors()[0]['msg']}") from None

    async def add(registry: Registry, js: JetStreamContext) -> str:
        record = await register(js, org, name, settings, SYSTEM)
        said = f"{record.org} registered ({record.name})"
        if policy is None:
            return said
        # The zone lives in one place, the organisation's scheduling settings. Its id is the
        # zone's own, so sending it again (when scheduling runs) takes effect once.
        command_id = uuid.uuid5(uuid.NAMESPACE_URL, f"time-zone/{org}/{policy.time_zone}").hex
        nc = await connection.connect(settings, "alongside-orgs")
        try:
            reply = await AlongsideClient(nc, sender=connection.principal(settings).sender).submit(
                org, ConfigureScheduling(policy=policy), command_id, retry_for=ZONE_WAIT_S
            )
        except (NatsTimeoutError, NoRespondersError, Unavailable) as error:
            raise _ZoneNotSet(said, org, policy, command_id, error) from None
        finally:
            await nc.close()
        if reply.status != "accepted":  # refused for good: sending it again would not do
            raise CliError(f"{said}, but its time zone was refused: {reply.model_dump_json()}")
        return f"{said}, time zone {policy.time_zone}"

    try:
        _on_registry(settings, add)
    except _ZoneNotSet as unset:  # registered: say so, and how to finish
        typer.echo(unset.said)
        typer.echo(f"alongside: {unset}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None


# How long `orgs add --time-zone` waits for the scheduling service (starting, restarting).
ZONE_WAIT_S = 5.0


class _ZoneNotSet(Exception):
    """Registered, but the time zone not set: the scheduling service did not answer."""

    def __init__(
        self, said: str, org: str, policy: SchedulingPolicy, command_id: str, error: Exception
    ) -> None:
        self.said = said
        payload = json.dumps({"policy": {"time_zone": policy.time_zone}})
        why = (
            "no scheduling service answered"
            if isinstance(error, NoRespondersError)
            else "the scheduling service did not answer"
            if isinstance(error, NatsTimeoutError)
            else "the scheduling service could not set it just now"
        )
        super().__init__(
            f"{org}'s time zone is not set yet: {why}. Once it runs, set it with\n"
            f"  echo '{payload}' | alongside submit ConfigureScheduling - --org {org} "
            f"--id {command_id}"
        )


@orgs_app.command("audit")
def orgs_audit(
    org: Annotated[str, typer.Argument(help="Organisation token.", callback=valid_org)],
    days: Annotated[
        int,
        typer.Argument(
            help="Days each decision is kept in the decision log (default 2557: seven years)."
        ),
    ],
) -> None:
    """Set how long the organisation's rules decisions are kept in the decision log (its
    audit period), for every decision from now on."""

    async def audit(registry: Registry, js: JetStreamContext) -> str:
        record = await registry.set_days(org, "audit_days", days)
        return f"{record.org}: decisions are kept {record.audit_days} days"

    _on_registry(_settings(), audit)


@orgs_app.command("retention")
def orgs_retention(
    org: Annotated[str, typer.Argument(help="Organisation token.", callback=valid_org)],
    days: Annotated[
        int, typer.Argument(help="Days a closed case is kept (default 2557: seven years).")
    ],
) -> None:
    """Set how long the organisation's closed cases are kept: intake's sweep then erases the
    client (as EraseClient does), keeping ids, dates and outcomes."""

    async def retention(registry: Registry, js: JetStreamContext) -> str:
        record = await registry.set_days(org, "retention_days", days)
        return f"{record.org}: closed cases are kept {record.retention_days} days"

    _on_registry(_settings(), retention)


@orgs_app.command("disable")
def orgs_disable(
    org: Annotated[str, typer.Argument(help="Organisation token.", callback=valid_org)],
) -> None:
    """Refuse an organisation's commands, rules and imports from now on (within seconds on
    every replica); its records stay."""

    async def disable(registry: Registry, js: JetStreamContext) -> str:
        record = await registry.disable(org)
        revoked = await _on_credentials(_settings(), lambda store: store.revoke(org))
        return f"{record.org} disabled" + (
            f"; credentials revoked: {', '.join(revoked)}" if revoked else ""
        )

    _on_registry(_settings(), disable)


async def _on_credentials(settings: Settings, act: Callable[[Credentials], Awaitable[T]]) -> T:
    """Act on organisations' credentials: as the operator (the bucket), with the operator's
    keys (signing) and as the system user (pushing the account to the server)."""
    auth = AuthDir(settings.auth_path)
    if not auth.exists():
        raise CliError(
            f"no operator keys in {auth.path}: set ALONGSIDE_AUTH_DIR to the folder "
            "`alongside auth init` made (`alongside up` makes its own)"
        )
    nc = await connection.connect(settings, "alongside-orgs")
    system = await bus.connect(
        connection.resolve_url(settings), "alongside-orgs-system", auth.credentials(SYSTEM_USER)
    )
    try:
        js = nc.jetstream()
        kv = await js.key_value(topology.CREDENTIALS_BUCKET)
        return await act(Credentials(kv, js, auth, system, SYSTEM))
    except AccessError as error:
        raise CliError(str(error)) from None
    finally:
        await system.close()
        await nc.close()


CredentialName = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="Which of the organisation's credentials (one "
        "per subscriber or system), e.g. billing-feed; the console's is "
        "always `console`.",
        callback=valid_name,
    ),
]


class Kind(StrEnum):
    subscriber = "subscriber"
    integration = "integration"
    console = "console"


@orgs_app.command("credentials")
def orgs_credentials(
    org: Annotated[str, typer.Argument(help="Organisation token.", callback=valid_org)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the .creds.")],
    kind: Annotated[
        Kind,
        typer.Option(
            "--kind",
            help="subscriber: read the organisation's events, nothing else; "
            "integration: also send its intake commands (no view, export or erasure); "
            "console: the console's own, every command, the sensitive reads among them.",
        ),
    ],
    name: CredentialName = None,
) -> None:
    """Write a NATS credentials file confined to this organisation and to its kind's job
    (docs/subscribers.md, "Credentials"). A subscriber or an integration reads the events
    through the durable consumer named as it, made here; its inbox prefix is
    _INBOX_org.<org>.<name>. Issuing a name again rotates it: the earlier file stops working
    at once, and the new one reads on from where the old one stopped."""
    settings = _settings()
    if output.exists():
        raise CliError(f"{output} exists; credentials are never overwritten in place")
    try:
        name = credential_name(kind.value, name)
    except AccessError as error:
        raise CliError(f"--name: {error}") from None

    async def issue() -> str:
        nc, registry = await _registry(settings)
        try:
            refusal = await registry.refusal(org)
        finally:
            await nc.close()
        if refusal is not None:
            raise CliError(refusal)
        issued = await _on_credentials(settings, lambda store: store.issue(org, kind.value, name))
        output.touch(mode=0o600)
        output.write_text(issued.text)
        return f"wrote {output}: {org}'s {kind.value} credential {name!r} ({issued.public_key})"

    typer.echo(asyncio.run(issue()))


@orgs_app.command("revoke")
def orgs_revoke(
    org: Annotated[str, typer.Argument(help="Organisation token.", callback=valid_org)],
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="One credential; every one of the organisation's without it.",
            callback=valid_name,
        ),
    ] = None,
) -> None:
    """Revoke credentials now: the server drops their connections and refuses them."""
    revoked = asyncio.run(_on_credentials(_settings(), lambda store: store.revoke(org, name)))
    typer.echo(f"revoked {org}: {', '.join(revoked)}" if revoked else f"{org}: nothing to revoke")


@orgs_app.command("issued")
def orgs_issued(
    org: Annotated[
        str | None,
        typer.Argument(
            help="One organisation; every one without it.",
            callback=lambda value: value if value is None else valid_org(value),
        ),
    ] = None,
) -> None:
    """Every credential issued, one JSON line each: its organisation, name, kind and whether
    it is valid now. A credential issued before kinds (contracts 2.0) may still send every
    command of its organisation: issue it again with --kind, then revoke what is left."""

    def line(record: CredentialRecord) -> str:
        return json.dumps(
            {
                "org": record.org,
                "name": record.name,
                "kind": record.kind or "none: issued before kinds, issue it again with --kind",
                "valid": record.public_key is not None,
                "issued_at": record.issued_at.isoformat() if record.issued_at else None,
            }
        )

    records = asyncio.run(_on_credentials(_settings(), lambda store: store.all(org or "*")))
    typer.echo("\n".join(line(record) for record in records) or "no credentials issued")


@orgs_app.command("list")
def orgs_list() -> None:
    """Every registered organisation, one JSON line each."""

    async def listed(registry: Registry, js: JetStreamContext) -> str:
        return "\n".join(record.model_dump_json() for record in await registry.all())

    _on_registry(_settings(), listed)


@auth_app.command("init")
def auth_init(
    directory: Annotated[Path, typer.Argument(help="A new folder for the keys, e.g. deploy/auth.")],
) -> None:
    """Make the operator's keys, the server's trust file (auth.conf, which every nats-server
    of the deployment includes) and the credentials of the operator, the system user and
    each service (creds/). Keep the folder with the operator; it is never overwritten."""
    try:
        auth = AuthDir.init(directory, SERVICE_NEEDS, int(SYSTEM().timestamp()))
    except AccessError as error:
        raise CliError(str(error)) from None
    typer.echo(
        f"wrote {auth.conf} and {len(SERVICE_NEEDS) + 2} credentials in "
        f"{auth.path / 'creds'}; set ALONGSIDE_AUTH_DIR={auth.path} where you run "
        "`alongside orgs credentials`"
    )


@auth_app.command("services")
def auth_services(
    directory: Annotated[Path, typer.Argument(help="The folder `auth init` made.")],
) -> None:
    """Issue each service's credential again, with the permissions this version gives it
    (after an upgrade; the console's too). Restart the services to use them."""
    auth = AuthDir(directory)
    if not auth.exists():
        raise CliError(f"no operator keys in {directory}: run `alongside auth init` first")
    auth.issue_services(SERVICE_NEEDS, int(SYSTEM().timestamp()))
    typer.echo(f"wrote {len(SERVICE_NEEDS)} service credentials in {auth.path / 'creds'}")


@contracts_app.command("export")
def contracts_export(
    directory: Annotated[Path, typer.Argument(help="Where to write schemas/ and asyncapi.json.")],
) -> None:
    """Write a JSON Schema per message and the AsyncAPI 3 document."""
    written = catalogue.export(directory)
    typer.echo(f"wrote {len(written)} files to {directory}")


@contracts_app.command("diagram")
def contracts_diagram(
    write: Annotated[
        Path | None, typer.Option("--write", help="Write the diagrams to this file.")
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option("--check", help="Fail if this file is not what the contracts give now."),
    ] = None,
) -> None:
    """Print each service's commands and events as Mermaid flowcharts in Markdown, drawn from
    the contracts (docs/messages.md)."""
    if write is not None and check is not None:
        raise CliError("give --write or --check, not both")
    if check is not None:
        problem = diagram.stale(check)
        if problem is not None:
            raise CliError(problem)
        typer.echo(f"{check} is current")
    elif write is not None:
        write.write_text(diagram.markdown(), encoding="utf-8")
        typer.echo(f"wrote {write}")
    else:
        typer.echo(diagram.markdown(), nl=False)


def main() -> None:
    try:
        app()
    except CliError as error:
        typer.echo(f"alongside: {error}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
