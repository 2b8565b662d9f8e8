"""``alongside notifications``: how an organisation reaches people, and turning off a
person's personal links."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from pydantic import ValidationError

from alongside import connection
from alongside.client import AlongsideClient, Unavailable
from alongside.options import CliError
from contracts.envelope import Command
from contracts.notifications import ChannelSettings, ConfigureNotifications, Person, RevokeLinks
from contracts.replies import plain_reason
from runtime.settings import Settings

app = typer.Typer(no_args_is_help=True, help="How organisations reach people.")

EXIT_UNAVAILABLE = 75
# The options whose names are not their fields'.
OPTIONS = {"from_address": "--from", "from_name": "--sender-name"}


def _send(org: str, command: Command) -> str:
    settings = Settings()

    async def run() -> str:
        nc = await connection.connect(settings, "alongside-notifications-cli")
        try:
            client = AlongsideClient(nc, sender=connection.principal(settings).sender)
            reply = await client.submit(org, command)
        except Unavailable:
            typer.echo("alongside: the notifications service is not running; try again", err=True)
            raise typer.Exit(EXIT_UNAVAILABLE) from None
        finally:
            await nc.close()
        if reply.status != "accepted":
            said = "; ".join(f"{e.field}: {e.reason}" for e in reply.errors)
            raise CliError(f"refused: {said}")
        return "done"

    return asyncio.run(run())


@app.command()
def configure(
    org: Annotated[str, typer.Argument(help="The organisation.")],
    from_address: Annotated[str, typer.Option("--from", help="The address messages come from.")],
    pages_url: Annotated[
        str, typer.Option(help="Where people reach their pages (the console's address).")
    ],
    sender_name: Annotated[
        str, typer.Option(help="Shown as the sender; never the scheme's name.")
    ] = "Peer support",
    smtp_url: Annotated[
        str | None, typer.Option(help="The organisation's own mail server (else the deployment's).")
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="An Apprise URL for SMS and other channels (json://host/path ...)."),
    ] = None,
    link_days: Annotated[int, typer.Option(help="How long a personal link lasts.")] = 14,
) -> None:
    """Set how ORG reaches people: email (and its sender), and one webhook for the rest."""
    try:
        settings = ChannelSettings(
            from_address=from_address,
            from_name=sender_name,
            smtp_url=smtp_url,
            webhook_url=webhook_url,
            pages_url=pages_url,
            link_days=link_days,
        )
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0])
        option = OPTIONS.get(name, "--" + name.replace("_", "-"))
        raise CliError(f"{option}: {plain_reason(first)}") from None
    _send(org, ConfigureNotifications(settings=settings))
    typer.echo(f"{org}: messages from {sender_name} <{from_address}>, pages at {pages_url}")


@app.command()
def revoke(
    org: Annotated[str, typer.Argument(help="The organisation.")],
    client: Annotated[str | None, typer.Option(help="A client, by their case id.")] = None,
    supporter: Annotated[str | None, typer.Option(help="A supporter, by id.")] = None,
    party: Annotated[
        str | None, typer.Option(help="Another party, as CASE:PARTY (their case and party id).")
    ] = None,
) -> None:
    """Turn off every open personal link of one person at once (a lost phone, a shared inbox)."""
    given = [x for x in (client, supporter, party) if x is not None]
    if len(given) != 1:
        raise CliError("name one person: --client CASE, --supporter ID or --party CASE:PARTY")
    try:
        if client is not None:
            person = Person(kind="client", case_id=client)
        elif supporter is not None:
            person = Person(kind="supporter", supporter_id=supporter)
        else:
            case_id, _, party_id = (party or "").partition(":")
            person = Person(kind="party", case_id=case_id, party_id=party_id)
    except ValidationError as error:
        raise CliError(plain_reason(error.errors()[0])) from None
    _send(org, RevokeLinks(person=person))
    typer.echo(f"{org}: every open link of that person is turned off")
