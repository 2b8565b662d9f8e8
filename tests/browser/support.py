"""What the browser tests share: where Chromium and axe-core are, and each page seen checked
with axe-core at a desktop's width and a phone's, and photographed for docs/."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page

from tests.conftest import CONSOLE_PASSWORD

HERE = Path(__file__).parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("ALONGSIDE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(
    os.environ.get("ALONGSIDE_SCREENSHOTS", HERE.parents[1] / "build" / "screenshots")
)


PHONE_WIDTH = 375
# The page's width past the window, and the innermost elements reaching past its right edge.
WIDER_THAN_THE_WINDOW = """() => {
  const root = document.documentElement;
  if (root.scrollWidth <= window.innerWidth) return [];
  const out = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.right > window.innerWidth + 1 && ![...e.children].some(
      c => c.getBoundingClientRect().right > window.innerWidth + 1);
  });
  return [`${root.scrollWidth}px`, ...out.slice(0, 4).map(
    e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' "' +
      (e.textContent || '').trim().slice(0, 30) + '"')];
}"""


class Visits:
    """Each page seen: checked with axe-core, and photographed for docs/."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.checked: list[str] = []
        self.blocked: list[str] = []  # what the console's Content-Security-Policy refused
        self.too_wide: list[str] = []  # pages that scroll sideways on a phone
        self.counts: dict[str, tuple[int, int]] = {}  # each page: axe's rules passed, violated
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def open(self, browser: Browser) -> Page:
        """A page of a new browser context, with axe-core in every document (an init script,
        which the console's Content-Security-Policy does not apply to: it allows no inline
        script, so ``add_script_tag`` would be refused)."""
        context = await browser.new_context()
        await context.add_init_script(path=str(AXE))
        page = await context.new_page()
        page.on(
            "console",
            lambda message: (
                self.blocked.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        return page

    async def check(self, page: Page, name: str) -> None:
        await self.axe(page, name)
        self.checked.append(name)
        await photograph(page, SCREENSHOTS / f"{name}.png")
        await self.on_a_phone(page, name)

    async def axe(self, page: Page, name: str) -> None:
        """axe-core's every rule (WCAG 2.2 A and AA, and its best practices) on the page:
        any violation, whatever its impact, is one; how many each page had is counted."""
        found: dict[str, Any] = await page.evaluate(
            "() => axe.run(document, {resultTypes: ['violations']})"
        )
        assert found["passes"], f"axe-core checked nothing on {name}"
        self.counts[name] = (len(found["passes"]), len(found["violations"]))
        for violation in found["violations"]:
            targets = [node["target"] for node in violation["nodes"]][:3]
            self.violations.append(
                f"{name}: {violation['id']} ({violation['impact']}) "
                f"{violation['help']} at {targets}"
            )

    async def on_a_phone(self, page: Page, name: str) -> None:
        """The same page 375 px wide (a small phone) scrolls only down, never sideways; what
        pokes out is named. The window's size is put back after."""
        size = page.viewport_size
        await page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
        wider: list[str] = await page.evaluate(WIDER_THAN_THE_WINDOW)
        if wider:
            self.too_wide.append(f"{name}: {', '.join(wider)}")
        await self.axe(page, f"{name} on a phone")
        await photograph(page, SCREENSHOTS / f"{name}-phone.png")
        if size is not None:
            await page.set_viewport_size(size)

    def tally(self, journey: str) -> None:
        """Each page's axe-core counts, written beside the screenshots (the closing notes')."""
        said = {name: {"rules_passed": p, "violations": v} for name, (p, v) in self.counts.items()}
        (SCREENSHOTS / f"axe-{journey}.json").write_text(json.dumps(said, indent=1))


async def sign_in(page: Page, email: str) -> None:
    """On the sign-in page: sign in, and be taken where the page was asked for."""
    assert "/sign-in" in page.url
    await page.fill("#email", email)
    await page.fill("#password", CONSOLE_PASSWORD)
    await page.click("button:text('Sign in')")


async def reload_until(page: Page, text: str, timeout_s: float = 20) -> None:
    """The page again until it says ``text``: services answer at their own pace."""
    for _ in range(int(timeout_s * 4)):
        if text in await page.content():
            return
        await asyncio.sleep(0.25)
        await page.reload()
    raise AssertionError(f"{page.url} never said {text!r}")


# Chromium captures at most 16,384 px: a longer page is photographed down to there.
TALLEST_PX = 16_000


async def photograph(page: Page, path: Path) -> None:
    height: int = await page.evaluate("() => document.documentElement.scrollHeight")
    width = (page.viewport_size or {"width": 1280})["width"]
    if height <= TALLEST_PX:
        await page.screenshot(path=str(path), full_page=True)
    else:
        clip = {"x": 0, "y": 0, "width": width, "height": TALLEST_PX}
        await page.screenshot(path=str(path), full_page=True, clip=clip)  # type: ignore[arg-type]


async def tab_to(page: Page, selector: str, most: int = 60) -> None:
    """Tab, as a keyboard does, until ``selector`` has the focus: it can be reached without
    a mouse, in the page's order."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{selector} was not reached by {most} presses of Tab on {page.url}")
