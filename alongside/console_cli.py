"""``alongside console``: who may sign in to the console; and running it under ``up``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, get_args

import typer
from nats.js.kv import KeyValue

from alongside import connection
from alongside.options import CliError, valid_org
from contracts.console import Role
from runtime import bus, topology
from runtime.access import ADMIN, SYSTEM_USER, AuthDir
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.logging import configure
from runtime.registry import Registry
from runtime.settings import Settings
from services.console import bootstrap, sessions
from services.console.accounts import AccountError, Accounts, account_id
from services.console.orgs import from_folder, issued_by

NAME = "console"  # as `alongside up console` names it
app = typer.Typer(no_args_is_help=True, help=__doc__)


def _role(value: str) -> tuple[str, Role]:
    org, _, role = value.partition("=")
    valid_org(org)
    if role not in get_args(Role):
        raise typer.BadParameter(f"{value!r}: ORG=ROLE, ROLE one of {', '.join(get_args(Role))}")
    return org, role  # type: ignore[return-value]


@app.command("account")
def account(
    email: Annotated[str, typer.Argument(help="The person's email: what they sign in with.")],
    name: Annotated[str, typer.Option("--name", help="Their name, as the console shows it.")],
    roles: Annotated[
        list[str],
        typer.Option(
            "--role", help="ORG=ROLE (coordinator, supervisor or operator); repeat for each."
        ),
    ],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from standard input, not a prompt."
        ),
    ] = False,
) -> None:
    """Make a console account, or give one a new password, name and roles."""
    settings = Settings()
    configure(settings.log_level, settings.log_json)
    granted = dict(_role(value) for value in roles)
    asyncio.run(_registered(settings, list(granted)))  # before a password is asked for
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def put(accounts: Accounts, held: KeyValue) -> str:
        made = await accounts.put(email, name, password, granted)
        roles = ", ".join(f"{role} of {org}" for org, role in made.roles.items())
        # A new password ends every session signed in with the old one.
        ended = await sessions.end_all(held, made.account_id)
        return f"{made.email}: {roles}" + (f"; {ended} session(s) ended" if ended else "")

    typer.echo(asyncio.run(_on_accounts(settings, put)))


@app.command("disable")
def disable(
    email: Annotated[str, typer.Argument(help="The account's email.")],
) -> None:
    """Stop an account: it cannot sign in, and its sessions end at once.
    (`console account` with the same email makes it active again.)"""
    settings = Settings()
    configure(settings.log_level, settings.log_json)

    async def stop(accounts: Accounts, held: KeyValue) -> str:
        disabled = await accounts.disable(email)
        ended = await sessions.end_all(held, disabled.account_id)
        return f"{disabled.email}: disabled; {ended} session(s) ended"

    typer.echo(asyncio.run(_on_accounts(settings, stop)))


@app.command("sign-out")
def sign_out(
    email: Annotated[str, typer.Argument(help="The account's email.")],
) -> None:
    """End every session of an account, on every console replica, at once (a lost laptop, a
    shared screen): each of its browsers must sign in again. The account stays active."""
    settings = Settings()
    configure(settings.log_level, settings.log_json)

    async def end(accounts: Accounts, held: KeyValue) -> str:
        ended = await sessions.end_all(held, account_id(email))
        return f"{email}: {ended} session(s) ended"

    typer.echo(asyncio.run(_on_accounts(settings, end)))


async def _on_accounts(
    settings: Settings, act: Callable[[Accounts, KeyValue], Awaitable[str]]
) -> str:
    """``act`` on the accounts and the sessions' bucket, as the operator."""
    nc = await connection.connect(settings, "alongside-console-accounts")
    try:
        js = nc.jetstream()
        kv = await js.key_value(topology.CONSOLE_ACCOUNTS_BUCKET)
        held = await js.key_value(topology.CONSOLE_SESSIONS_BUCKET)
        return await act(Accounts(kv, SYSTEM), held)
    except AccountError as error:
        raise CliError(str(error)) from None
    finally:
        await nc.close()


async def _registered(settings: Settings, orgs: list[str]) -> None:
    """A role only in an organisation registered here and active: refused otherwise."""
    nc = await connection.connect(settings, "alongside-console-accounts")
    try:
        registry = Registry(await nc.jetstream().key_value(topology.REGISTRY_BUCKET), SYSTEM)
        for org in orgs:
            refusal = await registry.refusal(org)
            if refusal is not None:
                raise CliError(f"--role {org}: {refusal} (alongside orgs list)")
    finally:
        await nc.close()


def check(settings: Settings) -> None:
    """Before anything starts: a console on a deployment's NATS needs the organisations'
    credentials the operator issued for it."""
    if settings.nats_url is not None and settings.console_credentials_dir is None:
        raise CliError(
            "the console sends each organisation's commands with that "
            "organisation's credential: set ALONGSIDE_CONSOLE_CREDENTIALS_DIR to a "
            "folder of <org>.creds (alongside orgs credentials ORG --kind console)"
        )


async def serve(url: str, settings: Settings, auth: AuthDir | None) -> None:
    """The console, until cancelled. On the embedded server (``auth``: its operator's keys)
    each organisation's credential is issued the first time it is needed and kept in
    ``<state_dir>/console``; on a deployment's, read from ``console_credentials_dir``."""
    if auth is None:
        assert settings.console_credentials_dir is not None
        await bootstrap.run(
            url,
            settings,
            SYSTEM,
            from_folder(settings.console_credentials_dir),
            settings.nats_credentials,
        )
        return
    admin = await bus.connect(url, "alongside-console-issuer", auth.credentials(ADMIN))
    system = await bus.connect(url, "alongside-console-system", auth.credentials(SYSTEM_USER))
    try:
        js = admin.jetstream()
        store = Credentials(
            await js.key_value(topology.CREDENTIALS_BUCKET), js, auth, system, SYSTEM
        )
        folder: Path = settings.state_dir / "console"
        await bootstrap.run(url, settings, SYSTEM, issued_by(store, folder), auth.credentials(NAME))
    finally:
        await system.close()
        await admin.close()
