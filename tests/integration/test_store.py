"""Listing keys against the real server: exact by pattern, paged, and leaving no consumer."""

from __future__ import annotations

from nats.aio.client import Client

from runtime import topology
from runtime.store import keys


async def test_listing_keys_thousands_of_times_leaves_no_consumer_behind(
    nc: Client, org: str
) -> None:
    js = nc.jetstream()
    kv = await js.key_value(topology.GROUPS_BUCKET)
    for n in range(30):
        await kv.put(f"{org}.g{n:02d}", b"{}")
    await kv.put(f"{org}x.g99", b"{}")  # another organisation whose name starts the same
    before = (await js.stream_info(f"KV_{topology.GROUPS_BUCKET}")).state.consumer_count

    for _ in range(2_000):
        found = await keys(kv, f"{org}.*")

    assert found == [f"{org}.g{n:02d}" for n in range(30)]
    after = (await js.stream_info(f"KV_{topology.GROUPS_BUCKET}")).state.consumer_count
    assert after == before  # a watch per listing left 2,000 consumers alive for minutes
