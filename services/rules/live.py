"""The rulesets live in this replica: shipped defaults, and each organisation's published ones.

Publishing swaps a pointer: the new version is compiled and registered under
a unique name first, then becomes current, and the old one is deleted from
the engine once no evaluation is using it. A published version that fails to
compile is refused and the current one stays. One that fails while deciding is
withdrawn for its organisation and kind alone: the version before it (or the
default) decides again, and the failed one is not made live again here.
"""

from __future__ import annotations

import threading
from pathlib import Path

from contracts.rules import Kind, PublishedRuleset
from runtime.logging import get_logger
from services.rules import bundle
from services.rules.engine import Engine

log = get_logger(__name__)


class Lease:
    """Releases its version when the ``with`` block ends (a class: this is a hot path)."""

    __slots__ = ("loaded",)

    def __init__(self, loaded: bundle.Loaded) -> None:
        self.loaded = loaded

    def __enter__(self) -> bundle.Loaded:
        return self.loaded

    def __exit__(self, *_: object) -> None:
        self.loaded.engine.release(self.loaded.name)


class LiveRulesets:
    def __init__(self, engine: Engine, root: Path = bundle.DEFAULT_ROOT) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._defaults = {
            kind: bundle.Loaded(engine, bundle.read_source(root, kind).resolve(), "default")
            for kind in Kind
        }
        self._published: dict[tuple[str, Kind], tuple[PublishedRuleset, bundle.Loaded]] = {}
        # The version each one replaced, kept live to fall back to.
        self._previous: dict[tuple[str, Kind], tuple[PublishedRuleset, bundle.Loaded]] = {}
        self._withdrawn: set[tuple[str, Kind, str, str]] = set()

    def current(self, org: str, kind: Kind) -> bundle.Loaded:
        with self._lock:
            published = self._published.get((org, kind))
        return published[1] if published else self._defaults[kind]

    def lease(self, org: str, kind: Kind) -> Lease:
        """``with live.lease(org, kind) as loaded``: the current version, held live while in
        use even if a newer one replaces it meanwhile."""
        with self._lock:
            published = self._published.get((org, kind))
            loaded = published[1] if published else self._defaults[kind]
            self.engine.acquire(loaded.name)
        return Lease(loaded)

    def published(self, org: str, kind: Kind) -> PublishedRuleset | None:
        with self._lock:
            entry = self._published.get((org, kind))
        return entry[0] if entry else None

    def apply(self, document: PublishedRuleset) -> bool:
        """Make ``document`` current for its org and kind; False when it was already."""
        key = (document.org, document.kind)
        current = self.published(*key)
        if (
            current is not None
            and current.content_hash == document.content_hash
            and current.version == document.version
        ):
            return False
        if (*key, document.version, document.content_hash) in self._withdrawn:
            return False
        label = f"published:{document.org}.{document.kind.value}@{document.version}"
        source = bundle.Source(
            kind=document.kind,
            org=document.org,
            default_text=document.default_text,
            override_text=document.override_text,
            default_label=label,
            override_label=label,
        )
        loaded = bundle.Loaded(self.engine, source.resolve(strict=False), document.org)
        if loaded.ref.content_hash != document.content_hash:
            loaded.unload()
            raise ValueError(f"{label}: content hash does not match")
        with self._lock:
            previous = self._published.get(key)
            self._published[key] = (document, loaded)
            older = self._previous.pop(key, None)
            if previous is not None:
                self._previous[key] = previous
            if older is not None:  # deleted once the last lease on it ends
                older[1].unload()
        log.info(
            "ruleset_live", org=document.org, kind=document.kind.value, version=document.version
        )
        return True

    def withdraw(self, org: str, kind: Kind, failed: bundle.Loaded, error: Exception) -> bool:
        """``failed`` raised while deciding for ``org``: if it is a published version, take
        it out of service here, put the one before it back, and return True (decide again);
        False for a default, whose failure is a defect of ours, not a publication's."""
        key = (org, kind)
        with self._lock:
            current = self._published.get(key)
            if current is None or current[1] is not failed:
                # Withdrawn meanwhile by another evaluation (decide again), or a default.
                return failed.withdrawn
            document = current[0]
            self._withdrawn.add((org, kind, document.version, document.content_hash))
            failed.withdrawn = True
            previous = self._previous.pop(key, None)
            if previous is None:
                del self._published[key]
            else:
                self._published[key] = previous
            failed.unload()  # deleted once the last lease on it ends
        log.error(
            "ruleset_withdrawn",
            org=org,
            kind=kind.value,
            version=document.version,
            error=f"{type(error).__name__}: {error}"[:500],
            now_deciding=previous[0].version if previous else "default",
        )
        return True
