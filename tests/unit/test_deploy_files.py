"""What the deployment files promise, checked without a Docker engine: every secret is
readable by the user the image runs as, and every nats-server configuration takes the
control line our credentials need."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.access import SERVICE_NEEDS, AuthDir
from runtime.clock import SYSTEM
from runtime.embedded import _config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
NATS_CONFIGS = sorted((ROOT / "deploy" / "nats").glob("*.conf"))


def image_user(dockerfile: str) -> tuple[int, int]:
    """The uid and gid the image's last stage runs as: its ``USER``, numeric or a name that
    stage's ``groupadd``/``useradd`` made."""
    stage = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[-1]
    runs = re.findall(r"^RUN (.*)$", stage.replace("\\\n", " "), flags=re.MULTILINE)
    commands = [shlex.split(part) for line in runs for part in line.split("&&")]
    users = re.findall(r"^USER (\S+)$", stage, flags=re.MULTILINE)
    assert users, "the image must not run as root"
    user, _, group = users[-1].partition(":")

    def made(tool: str, name: str, option: str) -> int:
        for words in commands:
            if words and words[0] == tool and words[-1] == name and option in words:
                return int(words[words.index(option) + 1])
        raise AssertionError(f"{name}: no {tool} {option} in the image's last stage")

    uid = int(user) if user.isdigit() else made("useradd", user, "--uid")
    if group:
        gid = int(group) if group.isdigit() else made("groupadd", group, "--gid")
    else:
        gid = made("useradd", user, "--gid") if not user.isdigit() else uid
    assert uid != 0
    return uid, gid


def mode_of(value: Any) -> int:
    """A Compose secret's mode: YAML reads 0440 as octal; a string is octal too."""
    return int(value, 8) if isinstance(value, str) else int(value)


def readable_by(secret: dict[str, Any], uid: int, gid: int) -> bool:
    mode = mode_of(secret.get("mode", 0o444))
    owner, group = int(secret.get("uid", 0)), int(secret.get("gid", 0))
    return bool((owner == uid and mode & 0o400) or (group == gid and mode & 0o040) or mode & 0o004)


def test_the_image_runs_as_its_own_user() -> None:
    assert image_user((ROOT / "Dockerfile").read_text()) == (10001, 10001)


def test_every_secret_is_readable_by_the_images_user_and_no_one_else() -> None:
    uid, gid = image_user((ROOT / "Dockerfile").read_text())
    checked = 0
    for name, service in COMPOSE["services"].items():
        if service.get("build") != ".":  # the nats servers: their own image, no secrets
            assert "secrets" not in service, name
            continue
        for secret in service.get("secrets", []):
            assert isinstance(secret, dict), f"{name}: {secret} in short form keeps host modes"
            assert secret["source"] in COMPOSE["secrets"], (name, secret)
            assert readable_by(secret, uid, gid), (name, secret)
            assert not mode_of(secret["mode"]) & 0o007, (name, secret)  # not world-readable
            assert int(secret["uid"]) == uid, (name, secret)
            checked += 1
    assert checked == 13  # provision's admin.creds; six services' own creds and the key


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        ("FROM a\nRUN useradd --system --uid 5 x\nUSER x\n", AssertionError),
        ("FROM a\nRUN groupadd --gid 6 g && useradd --uid 5 --gid 6 x\nUSER x\n", (5, 6)),
        ("FROM a\nUSER 7:8\n", (7, 8)),
        ("FROM a\nRUN useradd --uid 5 x\n", AssertionError),  # no USER: root
    ],
    ids=["name-without-gid", "names", "numbers", "root"],
)
def test_the_image_user_is_read_from_the_last_stage(
    dockerfile: str, expected: tuple[int, int] | type[Exception]
) -> None:
    if isinstance(expected, tuple):
        assert image_user(dockerfile) == expected
    else:
        with pytest.raises(expected):
            image_user(dockerfile)


def control_line_bytes(config: str) -> int:
    found = re.search(
        r"^\s*max_control_line:\s*(\d+)\s*(KB|K|MB|M)?\s*$",
        config,
        flags=re.MULTILINE | re.IGNORECASE,
    )
    assert found is not None, "max_control_line is not set"
    scale = {"": 1, "K": 1000, "KB": 1024, "M": 1000**2, "MB": 1024**2}
    return int(found[1]) * scale[(found[2] or "").upper()]


def test_every_server_configuration_takes_the_longest_connect_line_we_send(
    tmp_path: Path,
) -> None:
    """A service's credential (its permissions) travels in its CONNECT line; the largest is
    past nats-server's default of 4 KB, so each configuration we write raises it."""
    auth = AuthDir.init(tmp_path / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
    longest = max(len(path.read_text()) for path in (auth.path / "creds").glob("*.creds"))
    assert longest > 4096  # so the default would refuse it
    configs = {path.name: path.read_text() for path in NATS_CONFIGS}
    configs["embedded"] = _config(tmp_path / "store", 4222)
    assert len(configs) == 4
    for name, config in configs.items():
        assert control_line_bytes(config) >= 2 * longest, name  # and room to grow
