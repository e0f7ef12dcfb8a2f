"""The web chat in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).
Two pages join, see each other's presence and chat, then survive a node restart; the node runs on Redis, so
the room's history outlives it and a page opened after the restart is shown what was said before."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.browser import headless_browser
from tests.helpers import ROOT, GatewayProcess, free_port


@pytest.fixture
def node(redis_url: str) -> Iterator[GatewayProcess]:
    process = GatewayProcess(ROOT / "wsgw.yaml", "--redis", redis_url, port=free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.timeout(120)
def test_two_pages_join_chat_and_see_presence_then_survive_a_restart(node: GatewayProcess) -> None:
    from playwright.sync_api import expect

    url = f"http://127.0.0.1:{node.port}/dev/"
    with headless_browser() as browser:
        ada, bob = browser.new_page(), browser.new_page()
        for page, name in ((ada, "ada"), (bob, "bob")):
            page.goto(url)
            page.get_by_test_id("name").fill(name)
            page.get_by_test_id("join").click()
            expect(page.get_by_test_id("message")).to_be_enabled()
        expect(ada.get_by_test_id("presence")).to_contain_text("bob")
        expect(bob.get_by_test_id("presence")).to_contain_text("ada")
        expect(ada.get_by_test_id("log")).to_contain_text("bob joined")
        bob.get_by_test_id("message").fill("hello from bob")
        bob.get_by_test_id("send").click()
        expect(ada.get_by_test_id("log")).to_contain_text("bob: hello from bob")
        expect(bob.get_by_test_id("log")).to_contain_text("bob: hello from bob")

        node.stop(signal.SIGKILL)                    # the node dies; the pages back off and reconnect
        expect(ada.get_by_test_id("status")).to_contain_text("reconnecting")
        node.start()
        expect(ada.get_by_test_id("status")).to_have_text("connected", timeout=20_000)
        expect(bob.get_by_test_id("status")).to_have_text("connected", timeout=20_000)
        expect(ada.get_by_test_id("presence")).to_contain_text("bob", timeout=10_000)
        ada.get_by_test_id("message").fill("still here")
        ada.get_by_test_id("send").click()
        expect(bob.get_by_test_id("log")).to_contain_text("ada: still here")
        expect(bob.get_by_test_id("log").locator("li", has_text="bob: hello from bob")).to_have_count(1)

        cyd = browser.new_page()                     # joins after the restart: the room's history is replayed
        cyd.goto(url)
        cyd.get_by_test_id("name").fill("cyd")
        cyd.get_by_test_id("join").click()
        expect(cyd.get_by_test_id("log")).to_contain_text("bob: hello from bob")
        expect(cyd.get_by_test_id("log")).to_contain_text("ada: still here")
        expect(cyd.get_by_test_id("presence")).to_contain_text("ada")
        expect(ada.get_by_test_id("log")).to_contain_text("cyd joined")
