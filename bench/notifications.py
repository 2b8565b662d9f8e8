"""Benchmark of the notifications service: events about people in, emails out over SMTP, at
offered rates and over a long run, against the raw SMTP send rate measured in the same run.

A real nats-server (``sync_interval: always``, auth on) and a real SMTP server on loopback
(``alongside.mailcatcher``: aiosmtpd, every message saved as an ``.eml``); the intake and
notifications services in this process, as ``alongside up`` runs them, each with its own
credential (the rules and the others are not needed: a supervision's message needs only the
supporter's record and the organisation's channels). ``--supporters`` supporters are
registered through intake, each with an email they may be contacted at, and the
organisation's channels configured (``ConfigureNotifications``, the catcher as its mail
server). The bench then publishes ``SupervisionScheduled`` events into ``EVENTS`` itself,
as scheduling would, each with a new session: each is one email to its supporter (with a
calendar invitation and a personal link). An event and its email are matched by the
message's id, computed as the service computes it (``plans.supervision``).

  - Rates (issue: at least 50 messages a second with a p99 under 2 s). Events offered open
    loop (on a timetable) at each of ``--rates`` for ``--step-s`` seconds. Per step:
    delivered a second (over the emails' own span, the first to arrive to the last),
    latency from publishing the event to the mail server accepting its email (p50, p95,
    p99), lost (not arrived within the drain), synced writes per message (every stream's
    last sequence, KV buckets included, before and after, over the messages; the event
    published and its copy in the organisation's stream included) by stream, and CPU per
    message of this process (the services, the bench and the mail server's thread) and of
    nats-server.
  - Memory (``--memory N``): N events pushed through as fast as the service takes them,
    at most ``WINDOW`` published and not yet delivered; at every 10% of N delivered, the
    process's resident memory (``VmRSS``), the service's waiting messages
    (``deps.waiting``: those held, and the entries of its heap), the asyncio tasks and the
    objects the garbage collector tracks. Growth is from the 10% sample to the last.
  - Baseline: ``SmtpSender`` sending the same kind of message to the same mail server, one
    after another, no NATS (each composed just before its send; composing timed apart).

Every step and the memory run also count ``unexpected`` emails, which no event of theirs
explains (a message sent twice): each event must cause exactly one. The last line is JSON:
``notifications_sustained_per_s`` (the highest offered rate held: nothing lost, the p99
under 2 s, and emails delivered at 95% of the rate or more), ``goal_met`` (that rate is
50 or more), ``raw_smtp_send_per_s``, ``max_delivered_per_s`` and
``service_to_raw_smtp_ratio`` (the one over the other), the memory figures, the steps and
the memory samples.

    python -m bench.notifications [--rates 25,50,100] [--step-s 10] [--memory 100000]
        [--supporters 200] [--raw 1000] [--seed 20261208]
    python -m bench.notifications --quick      # CI: a check that it runs, not figures
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from alongside import sample, services
from alongside.client import AlongsideClient
from alongside.mailcatcher import MailCatcher
from bench import cpu_seconds, deployment, register, settled
from bench.console import machine, percentile
from bench.console_pages import resident_mb
from bench.pipeline import written
from contracts.envelope import Envelope, wrap
from contracts.intake import Contact
from contracts.notifications import ChannelSettings, ConfigureNotifications
from contracts.replies import CommandAccepted
from contracts.scheduling import SupervisionScheduled
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, AuthDir
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings
from services.notifications import plans
from services.notifications.email import CalendarInvite, Outgoing, compose
from services.notifications.gathering import NotificationsDeps
from services.notifications.transport import Outcome, SmtpSender

SEED = 20261208
ORG = "bench-notify"
SOURCE = "bench/notifications"
FROM = "support@peers.example.org"
PAGES = "http://127.0.0.1:8000"
GOAL_PER_S = 50
GOAL_P99_MS = 2000.0
KEPT_UP = 0.95  # a step holds its rate if emails arrive at 95% of it or more
WINDOW = 200  # memory run: events published and not yet delivered, at most
STALL_S = 20.0  # a drain ends when nothing has arrived for this long
POLL_S = 0.02  # how often the bench takes what the mail server caught


@dataclass
class Mail:
    """Emails as the mail server accepted them, matched to the events that caused them."""

    catcher: MailCatcher
    pending: dict[str, float] = field(default_factory=dict)  # message id: published at
    latencies: list[float] = field(default_factory=list)  # ms, when ``timing``
    timing: bool = True
    delivered: int = 0
    strangers: int = 0  # emails no pending event explains (the baseline's, duplicates)
    first_at: float | None = None  # the first email of a step, when it arrived
    last_at: float = 0.0
    moved: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self) -> None:
        """Take what the catcher caught, every ``POLL_S`` (the latency is the catcher's own
        arrival time, not when it is taken)."""
        while True:
            for caught in self.catcher.take():
                message_id = str(caught.message["Message-ID"]).strip("<>").partition("@")[0]
                published = self.pending.pop(message_id, None)
                self.moved.set()
                if published is None or caught.arrived_at is None:
                    self.strangers += 1
                    continue
                self.delivered += 1
                self.last_at = caught.arrived_at
                if self.first_at is None:
                    self.first_at = caught.arrived_at
                if self.timing:
                    self.latencies.append((caught.arrived_at - published) * 1000)
            await asyncio.sleep(POLL_S)

    async def drained(self) -> None:
        """Until nothing is pending, or nothing has arrived for ``STALL_S``."""
        while self.pending:
            self.moved.clear()
            try:
                await asyncio.wait_for(self.moved.wait(), STALL_S)
            except TimeoutError:
                return


@dataclass
class Events:
    """The ``SupervisionScheduled`` events the bench publishes: the n-th for supporter
    ``s<n % supporters>``, its envelope id from the seed, its email's message id as the
    service computes it."""

    js: JetStreamContext
    supporters: int
    rng: random.Random
    mail: Mail
    made: int = 0

    def next(self) -> tuple[Envelope[Any], str]:
        n, now = self.made, SYSTEM()
        self.made += 1
        event = SupervisionScheduled(
            supporter_id=f"s{n % self.supporters}",
            session_id=f"v{n}",
            kind="supervision",
            start=now + timedelta(days=7),
        )
        envelope_id = uuid.UUID(int=self.rng.getrandbits(128), version=4).hex
        envelope = wrap(event, org=ORG, source=SOURCE, time=now, id=envelope_id)
        [plan] = plans.supervision(event, envelope.id, envelope.time)
        return envelope, plan.message_id

    async def publish(self) -> None:
        envelope, message_id = self.next()
        self.mail.pending[message_id] = time.perf_counter()
        await bus.publish_event(self.js, envelope)


# Setup ----------------------------------------------------------------------------------


async def supporters_registered(
    client: AlongsideClient, count: int, seed: int, in_flight: int = 16
) -> None:
    """``count`` supporters (``s0`` ...) through intake, each with an email they may be
    contacted at (no vetting: a supervision's message needs only the record)."""
    rng = random.Random(seed)
    commands = []
    for n in range(count):
        command = sample.supporter(rng, f"s{n}")
        contact = Contact(email=f"s{n}@peers.example.org", may_contact=True)
        profile = command.profile.model_copy(update={"contact": contact})
        commands.append(command.model_copy(update={"profile": profile}))
    queue = iter(commands)

    async def worker() -> None:
        for command in queue:
            reply = await client.submit(ORG, command)
            assert isinstance(reply, CommandAccepted), reply

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def configured(client: AlongsideClient, catcher: MailCatcher) -> None:
    settings = ChannelSettings(from_address=FROM, smtp_url=catcher.url, pages_url=PAGES)
    reply = await client.submit(ORG, ConfigureNotifications(settings=settings))
    assert isinstance(reply, CommandAccepted), reply


# Baseline -------------------------------------------------------------------------------


def supervision_mail(i: int, now: datetime) -> Outgoing:
    """A message like the service's for a supervision: its text, link and invitation."""
    link = f"{PAGES}/p/{'x' * 66}"
    return Outgoing(
        message_id=f"raw{i}",
        to_address=f"s{i}@peers.example.org",
        from_address=FROM,
        from_name="Peer support",
        subject="Supervision",
        text=f"Your supervision is on {now:%A %d %B at %H:%M}.\n{link}\n",
        sent_at=now,
        unsubscribe_url=f"{link}/unsubscribe",
        invitation=CalendarInvite(
            uid=f"s{i}-raw{i}@alongside",
            method="REQUEST",
            sequence=int(now.timestamp()),
            start=now + timedelta(days=7),
            end=now + timedelta(days=7, hours=1),
            summary="Supervision",
            time_zone="Pacific/Auckland",
            stamp=now,
        ),
    )


async def raw_smtp(catcher: MailCatcher, mail: Mail, n: int) -> dict[str, float]:
    """``n`` messages like the service's sent one after another by ``SmtpSender`` to the
    same server; each composed just before its send, the composing timed apart."""
    sender, now = SmtpSender(), SYSTEM()
    compose_s = send_s = 0.0
    for i in range(n):
        started = time.perf_counter()
        message = compose(supervision_mail(i, now))
        sent = time.perf_counter()
        result = await sender.send(message, catcher.url)
        send_s += time.perf_counter() - sent
        compose_s += sent - started
        assert result.outcome is Outcome.SENT, result
    while mail.strangers < n:  # the catcher's thread may still be saving the last
        mail.moved.clear()
        await mail.moved.wait()
    mail.strangers -= n
    return {
        "raw_smtp_send_per_s": round(n / send_s, 1),
        "raw_smtp_send_ms": round(send_s * 1000 / n, 2),
        "compose_ms": round(compose_s * 1000 / n, 2),
    }


# Rates ----------------------------------------------------------------------------------


async def step(
    events: Events, admin: Client, rate: int, seconds: float, pids: dict[str, int]
) -> dict[str, Any]:
    """Events offered open loop at ``rate`` a second for ``seconds``; each email's latency
    from its event's publish to the mail server's acceptance."""
    mail = events.mail
    count = int(rate * seconds)
    mail.latencies, delivered_before, strangers_before = [], mail.delivered, mail.strangers
    mail.first_at = None
    before, cpu_before = await written(admin), {k: cpu_seconds(p) for k, p in pids.items()}
    started, tasks = time.perf_counter(), []
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(events.publish()))
    offered_s = time.perf_counter() - started
    await asyncio.gather(*tasks)
    await mail.drained()
    delivered = mail.delivered - delivered_before
    lost = len(mail.pending)
    mail.pending.clear()
    await settled(admin, [topology.NOTIFICATIONS_CONSUMER], timeout_s=120)
    after, cpu_after = await written(admin), {k: cpu_seconds(p) for k, p in pids.items()}
    latencies = mail.latencies
    # Over the emails' own span, first to last: a steady latency does not lower it.
    span = mail.last_at - (mail.first_at or mail.last_at)
    delivered_per_s = (delivered - 1) / span if delivered > 1 and span > 0 else 0.0
    writes = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    return {
        "offered_per_s": rate,
        "events": count,
        "achieved_offer_per_s": round(count / offered_s, 1),
        "delivered": delivered,
        "lost": lost,
        # Emails no event of the step explains: a message sent twice, or one lost before.
        "unexpected": mail.strangers - strangers_before,
        "delivered_per_s": round(delivered_per_s, 1),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        "p99_ms": round(p99, 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "rss_mb_after": round(resident_mb(), 1),
        # Kept up: nothing lost, the p99 under the goal, and emails leaving as fast as the
        # events came (a queue that grows through the step is not a rate held).
        "held": lost == 0 and p99 < GOAL_P99_MS and delivered_per_s >= KEPT_UP * rate,
        "synced_writes_per_message": round(sum(writes.values()) / count, 2),
        "writes_by_stream": {k: round(v / count, 2) for k, v in sorted(writes.items()) if v},
        "cpu_ms_per_message": {
            k: round((cpu_after[k] - cpu_before[k]) * 1000 / count, 2) for k in pids
        },
    }


# Memory ---------------------------------------------------------------------------------


async def memory(events: Events, deps: NotificationsDeps, n: int) -> dict[str, Any]:
    """``n`` events through as fast as the service takes them (``WINDOW`` in flight);
    a sample at every 10% of ``n`` delivered."""
    mail = events.mail
    mail.timing = False  # no list of n latencies in the memory measured
    first, strangers, samples = mail.delivered, mail.strangers, list[dict[str, Any]]()
    rss_before = round(resident_mb(), 1)
    every = max(1, n // 10)
    started = time.perf_counter()

    async def produce() -> None:
        for _ in range(n):
            while len(mail.pending) >= WINDOW:
                mail.moved.clear()
                await mail.moved.wait()
            await events.publish()

    producer = asyncio.create_task(produce())
    try:
        while len(samples) < 10:
            done = mail.delivered - first
            if done >= every * (len(samples) + 1):
                samples.append(sampled(done, time.perf_counter() - started, deps, mail))
                print(f"memory: {samples[-1]}", file=sys.stderr)
                continue
            if producer.done() and not mail.pending:
                break  # (lost ones: counted below)
            await asyncio.sleep(0.05)
            if time.perf_counter() - mail.last_at > STALL_S and mail.last_at and mail.pending:
                break
    finally:
        producer.cancel()
    elapsed = time.perf_counter() - started
    delivered = mail.delivered - first
    rss = [s["rss_mb"] for s in samples]
    return {
        "memory_messages": n,
        "memory_delivered": delivered,
        "memory_lost": n - delivered,
        "memory_unexpected": mail.strangers - strangers,
        "memory_rss_mb_before": rss_before,
        "memory_delivered_per_s": round(delivered / elapsed, 1),
        "memory_rss_mb_at_10pct": rss[0] if rss else None,
        "memory_rss_mb_at_100pct": rss[-1] if rss else None,
        "memory_rss_growth_mb_10_to_100pct": round(rss[-1] - rss[0], 1) if rss else None,
        "memory_samples": samples,
    }


def sampled(done: int, elapsed: float, deps: NotificationsDeps, mail: Mail) -> dict[str, Any]:
    waiting = deps.waiting
    return {
        "delivered": done,
        "elapsed_s": round(elapsed, 1),
        "rss_mb": round(resident_mb(), 1),
        "waiting_held": len(waiting),
        "waiting_heap": len(waiting._due),  # entries superseded stay until their due time
        "in_flight": len(mail.pending),
        "tasks": len(asyncio.all_tasks()),
        "gc_objects": len(gc.get_objects()),
    }


# The run --------------------------------------------------------------------------------


def sustained(steps: list[dict[str, Any]]) -> dict[str, Any]:
    held = [s for s in steps if s["held"]]
    best = held[-1] if held else None
    return {
        "notifications_sustained_per_s": best["offered_per_s"] if best else 0,
        "notifications_p99_ms": best["p99_ms"] if best else None,
        "goal_met": best is not None and best["offered_per_s"] >= GOAL_PER_S,
    }


async def measure(
    server: EmbeddedNats,
    auth: AuthDir,
    state: Path,
    settings: Settings,
    options: argparse.Namespace,
) -> dict[str, Any]:
    url = server.url
    admin = await bus.connect(url, "bench-admin", auth.credentials(ADMIN))
    await topology.provision(admin.jetstream(), settings)
    await register(admin.jetstream(), ORG, settings=settings)
    catcher = MailCatcher(state / "mail")
    catcher.start()
    mail = Mail(catcher)
    follower = asyncio.create_task(mail.follow())
    running = await services.start(
        url, ["intake", "notifications"], settings, credentials=auth.credentials
    )
    try:
        client = AlongsideClient(admin, source=SOURCE)
        started = time.perf_counter()
        await supporters_registered(client, options.supporters, options.seed)
        await configured(client, catcher)
        await settled(admin, [topology.NOTIFICATIONS_CONSUMER], timeout_s=120)
        setup_s = time.perf_counter() - started
        rss = {"rss_mb_after_setup": round(resident_mb(), 1)}
        baseline = await raw_smtp(catcher, mail, options.raw)
        rss["rss_mb_after_baseline"] = round(resident_mb(), 1)
        print(f"baseline: {baseline}", file=sys.stderr)
        events = Events(admin.jetstream(), options.supporters, random.Random(options.seed), mail)
        [nats_ports] = (state / "nats" / "ports").glob("nats-server_*.ports")
        pids = {"this_process": os.getpid(), "nats_server": int(nats_ports.stem.split("_")[1])}
        steps = []
        for rate in options.rates:
            result = await step(events, admin, rate, options.step_s, pids)
            steps.append(result)
            print(
                f"{rate}/s: delivered {result['delivered_per_s']}/s, p50 {result['p50_ms']} "
                f"ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, lost "
                f"{result['lost']}, {result['synced_writes_per_message']} writes/message, "
                f"cpu {result['cpu_ms_per_message']}",
                file=sys.stderr,
            )
        memory_figures = await memory(events, running.deps["notifications"], options.memory)
    finally:
        await running.stop()
        follower.cancel()
        catcher.stop()
        await admin.close()
    best = max((s["delivered_per_s"] for s in steps), default=0)
    return {
        **sustained(steps),
        **baseline,
        **rss,
        "max_delivered_per_s": best,
        "service_to_raw_smtp_ratio": round(best / baseline["raw_smtp_send_per_s"], 3),
        "memory_to_raw_smtp_ratio": round(
            memory_figures["memory_delivered_per_s"] / baseline["raw_smtp_send_per_s"], 3
        ),
        **{k: v for k, v in memory_figures.items() if k != "memory_samples"},
        "supporters": options.supporters,
        "setup_s": round(setup_s, 1),
        "step_s": options.step_s,
        "seed": options.seed,
        "machine": machine(),
        "steps": steps,
        "memory_samples": memory_figures["memory_samples"],
    }


async def run(options: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
        with EmbeddedNats(state / "nats", auth=auth) as server:
            settings = deployment(state, nats_url=server.url, log_level="WARNING")
            return await measure(server, auth, state, settings, options)


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| offered /s | delivered /s | p50 ms | p95 ms | p99 ms | lost | unexpected "
        "| writes / message | CPU ms / message (this process, nats-server) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in figures["steps"]:
        cpu = s["cpu_ms_per_message"]
        lines.append(
            f"| {s['offered_per_s']} | {s['delivered_per_s']} | {s['p50_ms']} | {s['p95_ms']} "
            f"| {s['p99_ms']} | {s['lost']} | {s['unexpected']} "
            f"| {s['synced_writes_per_message']} | {cpu['this_process']}, {cpu['nats_server']} |"
        )
    lines += ["", "| delivered | RSS MB | waiting (held, heap) | tasks | gc objects |"]
    lines.append("|---:|---:|---|---:|---:|")
    for m in figures["memory_samples"]:
        lines.append(
            f"| {m['delivered']} | {m['rss_mb']} | {m['waiting_held']}, {m['waiting_heap']} "
            f"| {m['tasks']} | {m['gc_objects']} |"
        )
    lines.append(
        f"\nsustained {figures['notifications_sustained_per_s']}/s (p99 "
        f"{figures['notifications_p99_ms']} ms; goal {GOAL_PER_S}/s under {GOAL_P99_MS:.0f} ms "
        f"met: {figures['goal_met']}); best {figures['max_delivered_per_s']}/s = "
        f"{figures['service_to_raw_smtp_ratio']} x raw SMTP "
        f"({figures['raw_smtp_send_per_s']}/s); RSS growth 10%->100% of "
        f"{figures['memory_messages']}: {figures['memory_rss_growth_mb_10_to_100pct']} MB"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="25,50,100")
    parser.add_argument("--step-s", type=float, default=10.0)
    parser.add_argument("--memory", type=int, default=100_000, help="messages in the memory run")
    parser.add_argument("--supporters", type=int, default=200)
    parser.add_argument("--raw", type=int, default=1000, help="baseline: raw SMTP sends")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--quick", action="store_true", help="CI: small and short")
    options = parser.parse_args()
    if options.quick:
        options.rates, options.step_s = "10,25", 2.0
        options.memory, options.supporters, options.raw = 300, 20, 50
    options.rates = [int(r) for r in options.rates.split(",")]
    configure("WARNING")  # not a line a message: the service's INFO would be measured too
    figures = asyncio.run(run(options))
    print(table(figures), file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
