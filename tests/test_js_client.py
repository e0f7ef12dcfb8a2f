"""The JavaScript client (wsgw/static/wsgw-client.js) under Node's own test runner, against real nodes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT


def node_binary() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is missing: install Debian's nodejs package (apt-get install -y nodejs)")
    return found


@pytest.mark.timeout(120)
def test_the_javascript_client_passes_its_node_tests(redis_url: str) -> None:
    """Against one node on the in-memory registry and one on Redis (history that outlives a restart)."""
    wsgw = Path(sys.executable).with_name("wsgw")
    result = subprocess.run([node_binary(), "--experimental-websocket", "--test", "tests/js/"], cwd=ROOT,
                            capture_output=True, text=True, timeout=110,
                            env={"PATH": "/usr/bin:/bin", "WSGW_BIN": str(wsgw), "WSGW_ROOT": str(ROOT),
                                 "WSGW_TEST_REDIS_URL": redis_url, "NODE_NO_WARNINGS": "1"})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "# fail 0" in result.stdout and "# skipped 0" in result.stdout
