"""Per-message cost of a mapping template render and of a model check: in-process, then through a gateway.

`python -m loadtest.transform_cost`: prints median and spread (min..max of the run medians) in µs, so the
cost a validated or templated route adds to a message can be read apart from the network path.

`python -m loadtest.transform_cost --gateway [--runs 3] [--seconds 3] [--connections 50]`: a `wsgw run` node
with five routes, measured in the same run, interleaved (the order rotated each run), `--runs` times: `plain`
(an in-process Python echo), `validated` (the same echo behind a model), `mock` (MOCK with a static answer),
`mock_aws` (MOCK as AWS's examples write it: `{"statusCode": 200}` and a response template over `$context`) and
`mock_templated` (MOCK with the typical request template below and that response template). Prints round
trips/s per route (median, min..max over the runs) and its ratio to `plain` in the same run, the gateway
process's CPU µs per message (user + system from /proc: steadier than wall-clock rates on a shared machine)
and its ratio, and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from loadtest.integration_rate import measure_window, start_node
from wsgw.aws.models import compile_models, compile_request_validator
from wsgw.aws.templates import compile_template

# A typical WebSocket request template: fields from the body, the caller, the stage, one loop.
TEMPLATE = """{
  "action": "$input.path('$.action')",
  "room": "$util.escapeJavaScript($input.path('$.room'))",
  "text": $input.json('$.text'),
  "tags": [#foreach($t in $input.path('$.tags'))"$t"#if($foreach.hasNext),#end#end],
  "connectionId": "$context.connectionId",
  "sourceIp": "$context.identity.sourceIp",
  "env": "$stageVariables.env"
}"""
BODY = orjson.dumps({"action": "send", "room": "lobby", "text": "hello there", "tags": ["a", "b", "c"]})
CONTEXT = {"connectionId": "abc=", "routeKey": "send", "identity": {"sourceIp": "127.0.0.1"}}
STAGE = {"env": "dev"}
MODEL = {
    "type": "object",
    "properties": {
        "action": {"type": "string"},
        "room": {"type": "string", "maxLength": 64},
        "text": {"type": "string", "maxLength": 1000},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
    },
    "required": ["action", "room", "text"],
}


def per_call_us(fn: Callable[[], object], calls: int, runs: int) -> tuple[float, float, float]:
    """Median, min and max over `runs` of the mean µs per call of `calls` calls."""
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        results.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(results), min(results), max(results)


def main(calls: int = 2000, runs: int = 7) -> int:
    template = compile_template(TEMPLATE)
    rendered = template.render(BODY, CONTEXT, STAGE)
    orjson.loads(rendered)  # the template's output is JSON
    validator = compile_request_validator("\\$default", {"$default": "Message"}, compile_models({"Message": MODEL}))
    assert validator is not None
    parsed = orjson.loads(BODY)
    assert validator.problem_parsed(parsed) is None
    rows = [
        ("template render (typical, 7 fields + loop)", lambda: template.render(BODY, CONTEXT, STAGE)),
        ("schema check, body already parsed", lambda: validator.problem_parsed(parsed)),
        ("schema check incl. JSON parse", lambda: validator.problem(BODY)),
        ("JSON parse alone (reference)", lambda: orjson.loads(BODY)),
    ]
    for label, fn in rows:
        median, low, high = per_call_us(fn, calls, runs)
        print(f"{label:45s} {median:8.1f} µs  ({low:.1f}..{high:.1f} over {runs} runs of {calls})")
    return 0


HANDLER = """
async def echo(event, context):
    return {"statusCode": 200, "body": event["body"]}
"""
ROUTES = ("plain", "validated", "mock", "mock_aws", "mock_templated")
# The typical template as a MOCK's request template: MOCK reads the status from its output.
MOCK_REQUEST = TEMPLATE.replace('"env": "$stageVariables.env"', '"env": "$stageVariables.env",\n  "statusCode": 200')
MOCK_RESPONSE = '{"action": "$context.routeKey", "connectionId": "$context.connectionId", "env": "$stageVariables.env"}'


def gateway_config() -> dict[str, object]:
    """The node's routes; the route key is the body's `action`, as the clients send it."""
    return {
        "stageVariables": STAGE,
        "models": {"Message": MODEL},
        "routes": {
            "plain": {"handler": "cost_handlers:echo", "routeResponse": True},
            "validated": {"handler": "cost_handlers:echo", "routeResponse": True,
                          "modelSelectionExpression": "\\$default", "requestModels": {"$default": "Message"}},
            "mock": {"integration": {"type": "MOCK", "response": '{"ok": true}'}, "routeResponse": True},
            "mock_aws": {"routeResponse": True, "integration": {     # MOCK as AWS's examples write it
                "type": "MOCK", "templateSelectionExpression": "\\$default",
                "requestTemplates": {"$default": '{"statusCode": 200}'},
                "integrationResponses": {"$default": {"responseTemplates": {"$default": MOCK_RESPONSE}}}}},
            "mock_templated": {"routeResponse": True, "integration": {
                "type": "MOCK", "templateSelectionExpression": "\\$default",
                "requestTemplates": {"$default": MOCK_REQUEST},
                "integrationResponses": {"$default": {"responseTemplates": {"$default": MOCK_RESPONSE}}}}},
        },
    }


def cpu_clock(pid: int) -> Callable[[], float]:
    """The CPU seconds (user + system) process `pid` has used: what a message costs the gateway, whatever else
    the machine runs (wall-clock rates on a shared machine move with the neighbours' load)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return read


async def measure_routes(url: str, runs: int, seconds: float, connections: int,
                         clock: Callable[[], float]) -> dict[str, list[tuple[float, float]]]:
    """Per route and run: (round trips/s, gateway CPU µs per message)."""
    from websockets.asyncio.client import connect

    async with connect(url) as ws:              # every route answers, and not with an error frame
        for route in ROUTES:
            await ws.send(json.dumps({"action": route, "room": "lobby", "text": "hi", "tags": []}))
            answer = json.loads(await ws.recv())
            if "message" in answer and "requestId" in answer:
                raise SystemExit(f"route {route} answered an error frame: {answer}")
    results: dict[str, list[tuple[float, float]]] = {route: [] for route in ROUTES}
    for run in range(runs):
        for route in ROUTES[run % len(ROUTES):] + ROUTES[:run % len(ROUTES)]:   # rotated: no route always first
            body = {"action": route, "room": "lobby", "text": "hello there", "tags": ["a", "b", "c"]}
            window = await measure_window(url, json.dumps(body), connections, seconds, clock)
            rate, cpu_us = window.count / window.elapsed, window.clock / max(window.count, 1) * 1e6
            results[route].append((rate, cpu_us))
            print(f"run {run + 1} {route:>15}: {rate:8.0f} round trips/s, {cpu_us:6.1f} µs gateway CPU per message",
                  flush=True)
    return results


def gateway(runs: int, seconds: float, connections: int) -> int:
    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "cost_handlers.py").write_text(HANDLER)
        config = Path(folder, "wsgw.yaml")
        config.write_text(json.dumps(gateway_config()))
        node, url = start_node(config)
        try:
            results = asyncio.run(measure_routes(url, runs, seconds, connections, cpu_clock(node.pid)))
        finally:
            node.terminate()
            node.wait(30)
    after = os.getloadavg()
    print(f"\n{connections} connections, {seconds:.0f} s per route per run, {runs} runs; "
          f"load average {before[0]:.2f} before, {after[0]:.2f} after")
    print("route: round trips/s median (min..max) | vs plain in the same run | gateway CPU µs/message | vs plain")
    for route in ROUTES:
        rates = [rate for rate, _ in results[route]]
        cpus = [cpu for _, cpu in results[route]]
        rate_ratios = [r / p for (r, _), (p, _) in zip(results[route], results["plain"], strict=True)]
        cpu_ratios = [c / p for (_, c), (_, p) in zip(results[route], results["plain"], strict=True)]
        print(f"{route:>15}: {statistics.median(rates):7.0f}/s ({min(rates):.0f}..{max(rates):.0f}) | "
              f"{statistics.median(rate_ratios):.2f} ({min(rate_ratios):.2f}..{max(rate_ratios):.2f}) | "
              f"{statistics.median(cpus):6.1f} ({min(cpus):.1f}..{max(cpus):.1f}) | "
              f"{statistics.median(cpu_ratios):.2f} ({min(cpu_ratios):.2f}..{max(cpu_ratios):.2f})")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gateway", action="store_true", help="measure routes through a wsgw node")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    sys.exit(gateway(args.runs, args.seconds, args.connections) if args.gateway else main())
