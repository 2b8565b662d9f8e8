"""The browser tests' fixtures: Chromium (Debian's, headless, through Playwright) and the
console served over HTTP by uvicorn, as ``alongside up`` serves it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from services.console.app import create_app, serve
from services.console.gate import ConsoleDeps
from tests.browser.support import AXE, CHROMIUM
from tests.support import free_port


@pytest.fixture
def needs_a_browser() -> None:
    missing = [
        what
        for what, there in (("chromium", Path(CHROMIUM).exists()), ("axe-core", AXE.exists()))
        if not there
    ]
    if missing:
        why = f"{' and '.join(missing)} not installed (apt-get install chromium; npm ci --prefix tests/browser)"
        if os.environ.get("ALONGSIDE_REQUIRE_BROWSER"):
            pytest.fail(why)
        # The quick start needs only Python: without a browser this test cannot run, so it
        # skips there; .ci/run installs both and requires it.
        pytest.skip(why)


@pytest.fixture
async def console_url(console_deps: ConsoleDeps, needs_a_browser: None) -> AsyncIterator[str]:
    port = free_port()
    serving = asyncio.create_task(serve(create_app(console_deps), "127.0.0.1", port))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            try:
                await http.get(f"{url}/sign-in")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    yield url
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving


@pytest.fixture
async def browser(needs_a_browser: None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # Playwright's own flags keep it offline (no sandbox as root, no background traffic).
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()
