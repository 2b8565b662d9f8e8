"""Health endpoints for container health checks: healthy while a service reaches NATS."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

from alongside import services
from runtime import health
from tests.conftest import Start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def status(port: int, path: str) -> int:
    def get() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return error.code

    return await asyncio.to_thread(get)


async def test_health_answers_per_service_and_fails_when_nats_is_out_of_reach(
    start: Start,
) -> None:
    running: services.Running = await start("intake", "rules")
    port = free_port()
    brokers = dict(zip(["intake", "rules"], running.brokers, strict=True))
    server = asyncio.create_task(health.serve(brokers, "127.0.0.1", port))
    try:
        for _ in range(100):
            try:
                first = await status(port, "/health/intake")
                break
            except urllib.error.URLError:
                await asyncio.sleep(0.05)
        assert first == 204
        assert await status(port, "/health") == 204
        assert await status(port, "/health/nosuch") == 404

        await running.brokers[1].stop()  # rules loses its connection
        assert await status(port, "/health/rules") == 500
        assert await status(port, "/health") == 500
        assert await status(port, "/health/intake") == 204
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
