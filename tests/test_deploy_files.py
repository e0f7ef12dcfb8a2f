"""deploy/: the compose file, Prometheus and Grafana provisioning parse, and every metric the dashboard
queries is one a node really exports (no Docker engine needed)."""

from __future__ import annotations

import json
import re

import yaml

from tests.helpers import ROOT
from wsgw.metrics import Metrics

DEPLOY = ROOT / "deploy"


def test_compose_has_prometheus_and_grafana_provisioned_with_the_dashboard() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "wsgw1", "wsgw2", "haproxy", "prometheus", "grafana"} <= set(services)
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), volume
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["wsgw1:8080", "wsgw2:8080"]
    for path in (DEPLOY / "grafana" / "provisioning").rglob("*.yml"):
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "wsgw.json").read_text())
    metrics = Metrics("a", "b")
    metrics.ws_route("x").integration_latency.observe(0.1)
    metrics.http_route("y").latency.observe(0.1)
    metrics.redis_roundtrip.labels(**metrics.node).observe(0.001)
    metrics.gauges(lambda: 1.0, lambda: 0.0)
    exported = {line.split("{")[0].split(" ")[0] for line in metrics.render().decode().splitlines()
                if line and not line.startswith("#")}
    exported |= {"wsgw_pushes_total", "wsgw_throttled_total", "wsgw_slow_consumer_closes_total",
                 "wsgw_authorizer_cache_hits_total", "wsgw_authorizer_calls_total"}   # labelled, none yet
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried |= set(re.findall(r"\b(wsgw_[A-Za-z0-9_]+)\{", target["expr"]))
    assert queried and queried <= exported, queried - exported
    assert all(isinstance(p["gridPos"]["y"], int) for p in dashboard["panels"])
