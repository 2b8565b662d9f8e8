"""Publishing a ruleset for an organisation: check, test, then make it live everywhere.

A version that fails its checks or cases is refused, and the version already
live stays live. Every replica watches the ``rules`` bucket and swaps within
seconds; the bucket's history is what ``rollback`` goes back to.
"""

from __future__ import annotations

from pathlib import Path

from nats.js import JetStreamContext

from contracts.envelope import wrap
from contracts.rules import Kind, PublishedRuleset, RulesetPublished, RulesetRef
from runtime import bus, topology
from runtime.clock import Clock
from runtime.registry import Registry
from services.rules import bundle
from services.rules.adapters import RulesStore
from services.rules.engine import Engine

SOURCE = "alongside/rules-cli"


class PublishRefused(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def prepare(
    root: Path, org: str, kind: Kind, engine: Engine | None = None, *, clock: Clock
) -> PublishedRuleset:
    """Check the whole rules folder strictly and run the cases of this org's ruleset."""
    try:
        return _prepare(root, org, kind, engine or Engine(), clock)
    except ValueError as error:  # a rules file error names its file and line
        raise PublishRefused([str(error)]) from error


def _prepare(root: Path, org: str, kind: Kind, engine: Engine, clock: Clock) -> PublishedRuleset:
    found = bundle.targets(root)
    default = next((t for t in found if t.kind == kind and t.org is None), None)
    if default is None:
        raise PublishRefused([f"no default {kind.value} ruleset under {root}"])
    target = next((t for t in found if t.kind == kind and t.org == org), None)
    if target is None:  # no override: the organisation uses the defaults, pinned at this version
        target = bundle.Target(kind, org, bundle.read_source(root, kind), default.cases)
    failures = [
        f"{r.target}: {r.case}: {r.detail}" for r in bundle.run_cases(engine, target) if not r.ok
    ]
    if failures:
        raise PublishRefused(failures)
    source = target.source
    ruleset = source.resolve()
    return PublishedRuleset(
        org=org,
        kind=kind,
        version=ruleset.version,
        content_hash=bundle.content_hash(ruleset),
        default_text=source.default_text,
        override_text=source.override_text,
        published_at=clock(),
    )


async def publish(
    js: JetStreamContext,
    store: RulesStore,
    document: PublishedRuleset,
    rolled_back_to: str | None = None,
    *,
    clock: Clock,
) -> PublishedRuleset:
    registry = Registry(await js.key_value(topology.REGISTRY_BUCKET), clock)
    refusal = await registry.refusal(document.org)
    if refusal is not None:
        raise PublishRefused([refusal])
    current = await store.current(document.org, document.kind)
    if current is not None and rolled_back_to is None:
        if current.version == document.version and current.content_hash == document.content_hash:
            return current
        if current.version == document.version:
            raise PublishRefused(
                [f"version {document.version} is live with other content: raise the version"]
            )
    now = clock()
    document = document.model_copy(update={"rolled_back_to": rolled_back_to, "published_at": now})
    revision = await store.put(document)
    document = document.model_copy(update={"revision": revision})
    event = RulesetPublished(
        ruleset=RulesetRef(
            org=document.org,
            kind=document.kind,
            version=document.version,
            content_hash=document.content_hash,
        ),
        revision=revision,
        rolled_back_to=rolled_back_to,
        labels=labels_of(document),
    )
    await bus.publish_event(js, wrap(event, org=document.org, source=SOURCE, time=now))
    return document


def labels_of(document: PublishedRuleset) -> dict[str, str]:
    """Each rule's label by its id, for the event pages read them from (a version published
    before labels has none: pages then make words of the ids)."""
    source = bundle.Source(
        document.kind, document.org, document.default_text, document.override_text
    )
    return {rule.id: rule.label for rule in source.resolve(strict=False).rules if rule.label}


async def rollback(
    js: JetStreamContext,
    store: RulesStore,
    org: str,
    kind: Kind,
    to_version: str | None = None,
    *,
    clock: Clock,
) -> PublishedRuleset:
    live = await store.current(org, kind)  # None when unreadable: any readable one is earlier
    earlier = [
        d for d in await store.history(org, kind) if live is None or d.revision < live.revision
    ]
    if not earlier and to_version is None:
        raise PublishRefused([f"{org}.{kind.value} has no earlier version to roll back to"])
    candidates = [d for d in earlier if to_version in (None, d.version)]
    if not candidates:
        raise PublishRefused([f"{org}.{kind.value} was never published at version {to_version}"])
    target = candidates[-1]
    if live is not None and (target.content_hash, target.version) == (
        live.content_hash,
        live.version,
    ):
        raise PublishRefused([f"version {target.version} is already live"])
    return await publish(js, store, target, rolled_back_to=target.version, clock=clock)
