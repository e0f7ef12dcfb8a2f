"""Debian's chromium under Playwright (never a downloaded browser), for the tests that drive a page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"


def chromium() -> str:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail("chromium is missing: install Debian's chromium package (apt-get install -y chromium); "
                    "`make test` does so when run as root")
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


@contextmanager
def headless_browser() -> Iterator[Any]:
    """A headless chromium (a playwright Browser), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--headless=new"])
        try:
            yield browser
        finally:
            browser.close()
