"""``alongside rules``: the ops loop for rules files.

check, test, publish, explain, history, rollback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import typer
from nats.aio.client import Client as Nats

from alongside import connection
from alongside.client import AlongsideClient, Unavailable
from alongside.options import EXIT_UNAVAILABLE, CliError, OrgOpt, read_text
from contracts.rules import EvaluateRules, Kind, RulesDecision, RulesEvaluated
from runtime import topology
from runtime.clock import SYSTEM
from runtime.logging import configure
from runtime.settings import Settings
from runtime.state import DecisionLogReader
from runtime.vault import Vault
from services.rules import bundle, publishing
from services.rules.adapters import RulesStore
from services.rules.engine import Engine

app = typer.Typer(no_args_is_help=True, help=__doc__)

PathArg = Annotated[
    Path | None,
    typer.Argument(help="The rules folder (default: ALONGSIDE_RULES_DIR, else the shipped one)."),
]


@app.callback()
def _configure_logging() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_json)


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


@app.command()
def check(path: PathArg = None) -> None:
    """Check every ruleset, override and cases file strictly (errors name file and line)."""
    try:
        found = bundle.targets(path or bundle.root_of(Settings()))
        for target in found:
            target.source.resolve()
    except ValueError as error:
        _fail(f"error: {error}")
    cases = sum(len(t.cases) for t in found)
    typer.echo(f"ok: {len(found)} rulesets, {cases} cases")


@app.command("test")
def run_cases(path: PathArg = None) -> None:
    """Run every ruleset's cases on durable_rules and the reference evaluator."""
    try:
        found = bundle.targets(path or bundle.root_of(Settings()))
    except ValueError as error:
        _fail(f"error: {error}")
    engine = Engine()
    failed = 0
    for target in found:
        try:
            results = bundle.run_cases(engine, target)
        except ValueError as error:
            _fail(f"error: {error}")
        for result in results:
            failed += not result.ok
            mark = "ok  " if result.ok else "FAIL"
            typer.echo(f"{mark} {result.target}: {result.case} ({result.detail})")
    if failed:
        _fail(f"{failed} case(s) failed")
    typer.echo("all cases pass")


@asynccontextmanager
async def _published(settings: Settings) -> AsyncIterator[tuple[Nats, RulesStore]]:
    """A connection and the published rulesets, closed when done."""
    nc = await connection.connect(settings, "alongside-rules-cli")
    try:
        yield nc, RulesStore(await nc.jetstream().key_value(topology.RULES_BUCKET))
    finally:
        await nc.close()


@app.command()
def publish(
    org: OrgOpt,
    kind: Annotated[
        list[Kind] | None, typer.Option(help="Kinds to publish (default: all).")
    ] = None,
    path: Annotated[
        Path | None,
        typer.Option(help="The rules folder (default: ALONGSIDE_RULES_DIR, else the shipped one)."),
    ] = None,
) -> None:
    """Check and test, then publish the organisation's rulesets; running replicas swap live."""
    settings = Settings()
    path = path or bundle.root_of(settings)

    async def run() -> None:
        async with _published(settings) as (nc, store):
            engine = Engine()
            for each in kind or list(Kind):
                document = publishing.prepare(path, org, each, engine, clock=SYSTEM)
                live = await publishing.publish(nc.jetstream(), store, document, clock=SYSTEM)
                typer.echo(
                    f"{org}.{each.value}@{live.version} live (revision {live.revision}, "
                    f"sha256 {live.content_hash[:12]})"
                )

    try:
        asyncio.run(run())
    except publishing.PublishRefused as refused:
        _fail("refused; the live version stays:\n  " + "\n  ".join(refused.problems))


@app.command()
def explain(
    org: OrgOpt,
    kind: Annotated[Kind | None, typer.Argument(help="Which ruleset.")] = None,
    file: Annotated[str | None, typer.Argument(help="JSON facts; - for standard input.")] = None,
    decision_id: Annotated[
        str | None,
        typer.Option(
            "--decision",
            help="Explain a past decision by the id its event carries, from the "
            "decision log, instead.",
        ),
    ] = None,
) -> None:
    """Evaluate one fact on the live ruleset and say which rules fired and why; or, with
    --decision, say why a past decision came out as it did."""
    settings = Settings()
    if decision_id is not None:
        asyncio.run(_explain_logged(settings, org, decision_id))
        return
    if kind is None or file is None:
        raise CliError("give KIND and FILE, or --decision ID")
    text = sys.stdin.read() if file == "-" else read_text(Path(file))
    try:
        facts = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{file}: not JSON ({error})") from None

    async def run() -> None:
        nc = await connection.connect(settings, "alongside-rules-cli")
        try:
            client = AlongsideClient(nc, sender=connection.principal(settings).sender)
            reply = await client.request(org, EvaluateRules(kind=kind, facts=facts))
        except Unavailable as unavailable:  # not carried out just now: nothing refused it
            typer.echo(unavailable.reply.model_dump_json(indent=2))
            raise typer.Exit(EXIT_UNAVAILABLE) from None
        finally:
            await nc.close()
        if not isinstance(reply, RulesEvaluated):
            typer.echo(reply.model_dump_json(indent=2))
            raise typer.Exit(1)
        _say(reply.decision)

    asyncio.run(run())


def _say(decision: RulesDecision) -> None:
    ref = decision.ruleset
    typer.echo(f"{decision.outcome}  (ruleset {ref.id}, sha256 {ref.content_hash[:12]})")
    for fired in decision.fired:
        typer.echo(f"  {fired.rule}: {fired.reason or '(why was erased with the person)'}")
    if not decision.fired:
        typer.echo("  no rule fired: the ruleset's default outcome applies")
    typer.echo(f"  decision {decision.decision_id}, facts sha256 {decision.facts_sha256}")


async def _explain_logged(settings: Settings, org: str, decision_id: str) -> None:
    nc = await connection.connect(settings, "alongside-rules-cli")
    try:
        js = nc.jetstream()
        logged = await DecisionLogReader(js, Vault.of(js, settings)).find(org, decision_id)
    finally:
        await nc.close()
    if logged is None:
        raise CliError(
            f"no decision {decision_id} of {org} in the decision log (ids are on "
            "decision events; entries past the audit period are gone)"
        )
    decision = logged.decision
    typer.echo(
        f"{decision.kind.value} of {decision.subject_id}, decided "
        f"{decision.decided_at.isoformat()}"
        + (f" after message {logged.cause_id}" if logged.cause_id else "")
    )
    _say(decision)


@app.command()
def decisions(
    org: OrgOpt,
    subject_id: Annotated[str, typer.Argument(help="A supporter's or a case's id.")],
) -> None:
    """Every logged decision about one supporter or case, oldest first: what was decided,
    when and by which ruleset (``explain --decision ID`` says why)."""
    settings = Settings()

    async def run() -> None:
        nc = await connection.connect(settings, "alongside-rules-cli")
        try:
            js = nc.jetstream()
            found = await DecisionLogReader(js, Vault.of(js, settings)).of_subject(org, subject_id)
        finally:
            await nc.close()
        if not found:
            typer.echo(f"no logged decision about {subject_id} in {org}")
        for logged in found:
            d = logged.decision
            typer.echo(
                f"{d.decided_at.isoformat()}  {d.kind.value:<16} {d.outcome:<10} "
                f"{d.ruleset.id}  {d.decision_id}"
            )

    asyncio.run(run())


@app.command()
def history(org: OrgOpt, kind: Annotated[Kind, typer.Argument(help="Which ruleset.")]) -> None:
    """Every published version of one organisation's ruleset, oldest first."""
    settings = Settings()

    async def run() -> None:
        async with _published(settings) as (_, store):
            documents = await store.history(org, kind)
        if not documents:
            typer.echo(f"{org}.{kind.value}: never published (the defaults apply)")
        for d in documents:
            note = f"  rollback to {d.rolled_back_to}" if d.rolled_back_to else ""
            typer.echo(
                f"revision {d.revision}  {d.version}  sha256 {d.content_hash[:12]}  "
                f"{d.published_at.isoformat(timespec='seconds')}{note}"
            )

    asyncio.run(run())


@app.command()
def rollback(
    org: OrgOpt,
    kind: Annotated[Kind, typer.Argument(help="Which ruleset.")],
    to: Annotated[
        str | None, typer.Option(help="Version to go back to (default: the previous).")
    ] = None,
) -> None:
    """Make an earlier published version live again (as a new revision)."""
    settings = Settings()

    async def run() -> None:
        async with _published(settings) as (nc, store):
            live = await publishing.rollback(nc.jetstream(), store, org, kind, to, clock=SYSTEM)
        typer.echo(f"{org}.{kind.value}@{live.version} live again (revision {live.revision})")

    try:
        asyncio.run(run())
    except publishing.PublishRefused as refused:
        _fail("refused: " + "; ".join(refused.problems))
