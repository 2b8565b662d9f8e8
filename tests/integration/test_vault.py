"""A person's data key: made once, shared by every replica, and erased for good, down to
the bytes in the nats-server's store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.aio.client import Client

from alongside.client import AlongsideClient
from contracts.replies import CommandAccepted
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.vault import Erased, NoMasterKey, Vault, load_master_key, open_sealed, seal
from tests.conftest import Start
from tests.support import (
    MARKERS,
    marked_intake,
    marked_record_check,
    marked_supporter,
    org_today,
    wait_for,
)

MASTER = bytes(range(32))


def on_disk(store: Path, needle: bytes) -> list[str]:
    """Every file of the server's store holding ``needle``."""
    return [str(f) for f in store.rglob("*") if f.is_file() and needle in f.read_bytes()]


async def test_a_persons_key_is_made_once_whoever_races_and_each_organisation_has_its_own(
    nc: Client, org: str, other_org: str
) -> None:
    replicas = [Vault(nc.jetstream(), MASTER) for _ in range(4)]
    # Some as for a record being created (made without asking first), some not.
    keys = await asyncio.gather(
        *(v.key_or_new(org, "client", "c1", fresh=n % 2 == 0) for n, v in enumerate(replicas))
    )
    assert len(set(keys)) == 1
    assert (
        await Vault(nc.jetstream(), MASTER).key_or_new(org, "client", "c1", fresh=True) == (keys[0])
    )
    assert await replicas[0].key(org, "client", "c1") == keys[0]
    assert await replicas[0].key_or_new(other_org, "client", "c1") != keys[0]
    assert await replicas[0].key(org, "supporter", "c1") is None  # another person


async def test_an_erased_persons_key_is_gone_from_disk_and_their_data_cannot_be_opened(
    nc: Client, nats_server: EmbeddedNats, org: str
) -> None:
    vault = Vault(nc.jetstream(), MASTER)
    key = await vault.key_or_new(org, "client", "c1")
    kept = await vault.key_or_new(org, "client", "c2")
    sealed = seal(key, {"display_name": "Wrenna"}, context="cases.client.display_name")
    assert open_sealed(key, sealed, context="cases.client.display_name") == {
        "display_name": "Wrenna"
    }
    with pytest.raises(ValueError, match="another place"):
        open_sealed(key, sealed, context="cases.client.summary")
    await nc.flush()
    store = nats_server.state_dir / "jetstream"
    # The wrapped key is what the store holds (never the key itself).
    assert on_disk(store, key) == []

    assert await vault.erase(org, "client", "c1") is True
    with pytest.raises(Erased):
        await vault.key(org, "client", "c1")
    with pytest.raises(Erased):
        await vault.key_or_new(org, "client", "c1")  # nothing new is sealed for them
    with pytest.raises(Erased):
        await Vault(nc.jetstream(), MASTER).key_or_new(org, "client", "c1", fresh=True)
    assert await vault.erase(org, "client", "c1") is False
    assert await Vault(nc.jetstream(), MASTER).key(org, "client", "c2") == kept


async def test_erasing_overwrites_the_wrapped_key_in_the_store_files(
    nc: Client, nats_server: EmbeddedNats, org: str
) -> None:
    vault = Vault(nc.jetstream(), MASTER)
    await vault.key_or_new(org, "supporter", "s1")
    store = nats_server.state_dir / "jetstream"
    msg = await nc.jetstream().get_last_msg("KEYS", f"alongside.{org}.key.supporter.s1")
    assert msg.data is not None
    wrapped = msg.data
    for _ in range(50):  # written through to the block file
        if on_disk(store, wrapped):
            break
        await asyncio.sleep(0.05)
    assert on_disk(store, wrapped)

    await vault.erase(org, "supporter", "s1")
    assert on_disk(store, wrapped) == []


def test_the_master_key_is_made_once_and_kept_from_others(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "master.key"
    with pytest.raises(NoMasterKey, match="ALONGSIDE_MASTER_KEY_FILE"):
        load_master_key(path)  # a service never makes one of its own
    first = load_master_key(path, create=True)
    assert load_master_key(path) == first
    assert len(first) == 32
    assert path.stat().st_mode & 0o077 == 0


async def test_intakes_records_hold_no_personal_data_in_the_clear_on_disk(
    start: Start, client: AlongsideClient, nats_server: EmbeddedNats, org: str
) -> None:
    await start()
    assert isinstance(await client.submit(org, marked_supporter("s1")), CommandAccepted)
    check = marked_record_check("s1", org_today(SYSTEM))
    assert isinstance(await client.submit(org, check), CommandAccepted)
    assert isinstance(await client.submit(org, marked_intake("c1")), CommandAccepted)
    await wait_for(client, org, "MatchingPolicyDecided")  # the rules read the case, opened
    streams = nats_server.state_dir / "jetstream"
    kept = [d for d in streams.rglob("KV_*") if d.name in {"KV_supporters", "KV_cases"}]
    assert len(kept) == 2
    for bucket in kept:
        found = [name for name, marker in MARKERS.items() if on_disk(bucket, marker.encode())]
        assert found == [], bucket.name
