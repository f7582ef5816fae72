"""What a person does, in Debian's Chromium driven by Playwright: sign in, click a card, run a cell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = Path(os.environ.get("BEAMHUB_TEST_ARTIFACTS", "test-artifacts"))


def test_sign_in_click_a_card_and_run_a_cell(platform, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(90_000)
    try:
        page.goto(f"{platform.url}/hub/")
        # the provider's own sign-in page
        page.wait_for_selector("text=BeamHub sign-in")
        page.fill("#username", "alice")
        page.fill("#password", "alice")
        page.click("button[type=submit]")

        # the launch page: one card per allowed environment, one click starts it
        page.wait_for_selector(".beam-card[data-environment=scipy]")
        page.screenshot(path=str(ARTIFACTS / "launch-page.png"), full_page=True)
        assert page.locator(".beam-card").count() == 5
        page.click(".beam-card[data-environment=scipy]")

        # progress page, then JupyterLab
        page.wait_for_url("**/user/alice/lab**", timeout=120_000)
        page.wait_for_selector(".jp-LauncherCard", timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))

        # a new notebook from the launcher; run a cell that imports the kernels and prints the identity
        page.locator(".jp-LauncherCard[data-category=Notebook]").first.click()
        page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content")
        # the kernel is up when the status bar says so (typing earlier can be lost under load)
        page.wait_for_selector(".jp-StatusBar-TextItem:has-text('Idle')", timeout=180_000)
        cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        code = (
            "import os, beamhub.kernels; "
            "print('identity', os.environ['BEAMHUB_USER'], os.environ['BEAMHUB_UID'], "
            "os.environ['BEAMHUB_GROUPS'], beamhub.kernels.__name__)"
        )
        cell.click()
        page.keyboard.type(code)
        assert "BEAMHUB_GROUPS" in cell.inner_text()
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-OutputArea-output").first
        output.wait_for(timeout=180_000)
        page.screenshot(path=str(ARTIFACTS / "cell-output.png"))
        assert output.inner_text().strip() == "identity alice 2001 spi,tomo beamhub.kernels"
    finally:
        page.screenshot(path=str(ARTIFACTS / "launch-last.png"))
        page.close()
        platform.api.delete("/users/alice/server")
