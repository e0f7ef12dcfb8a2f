"""Re-take docs/img/web-chat.png: `make run` in one shell, then `.venv/bin/python docs/img/screenshot.py`."""

from pathlib import Path

from playwright.sync_api import expect, sync_playwright

URL = "http://127.0.0.1:8080/dev/"

with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless=new"])
    pages = [browser.new_page(viewport={"width": 900, "height": 560}) for _ in range(2)]
    for page, name in zip(pages, ("ada", "bob"), strict=True):
        page.goto(URL)
        page.get_by_test_id("name").fill(name)
        page.get_by_test_id("join").click()
        expect(page.get_by_test_id("message")).to_be_enabled()
    for page, text in ((pages[1], "hi ada, the gateway works"), (pages[0], "hello bob, and it reconnects too")):
        page.get_by_test_id("message").fill(text)
        page.get_by_test_id("send").click()
    expect(pages[0].get_by_test_id("log")).to_contain_text("reconnects too")
    pages[0].screenshot(path=str(Path(__file__).with_name("web-chat.png")))
    browser.close()
