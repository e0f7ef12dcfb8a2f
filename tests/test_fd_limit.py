"""The file-descriptor limit: raised at start for the planned connections, reported when the OS keeps it lower."""

from __future__ import annotations

import json
import resource
import urllib.request

from tests.helpers import ROOT, GatewayProcess, wait_for_sync
from wsgw.server.fdlimit import HEADROOM, raise_fd_limit


def health(proc: GatewayProcess) -> dict[str, object]:
    with urllib.request.urlopen(f"{proc.base}/health", timeout=10) as answer:
        return dict(json.loads(answer.read()))


def test_a_node_raises_its_limit_for_the_planned_connections_and_shows_it_on_health() -> None:
    with GatewayProcess(ROOT / "wsgw.yaml", "--planned-connections", "2000") as proc:
        fds = health(proc)["fileDescriptors"]
        assert isinstance(fds, dict)
        assert fds["wanted"] == 2000 + HEADROOM
        assert fds["enough"] is True and int(fds["limit"]) >= 2000 + HEADROOM


def test_a_limit_the_os_will_not_raise_far_enough_is_logged_and_shown() -> None:
    # More than the kernel's per-process ceiling (fs.nr_open): no process may get there, root or not.
    with GatewayProcess(ROOT / "wsgw.yaml", "--planned-connections", "50000000") as proc:
        fds = health(proc)["fileDescriptors"]
        assert isinstance(fds, dict)
        assert fds["enough"] is False and int(fds["limit"]) < int(str(fds["wanted"]))
        wait_for_sync(lambda: any("file descriptors: the limit is" in line for line in proc.output))


def test_raising_never_lowers_the_limit() -> None:
    before, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = raise_fd_limit(1)
    assert limit.soft >= before and limit.enough
