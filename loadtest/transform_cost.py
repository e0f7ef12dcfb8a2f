"""Per-message cost of a mapping template render and of a model check, in-process (no sockets).

`python -m loadtest.transform_cost`: prints median and spread (min..max of the run medians) in µs, so the
cost a validated or templated route adds to a message can be read apart from the network path.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import orjson

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


if __name__ == "__main__":
    sys.exit(main())
