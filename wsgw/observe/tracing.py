"""Optional OpenTelemetry tracing (the `otel` extra, off unless `tracing:` is configured).

One span per connect, message, push and integration call (REST requests too), made by wrapping the
gateway's entry points once at start, so a node without tracing runs exactly the code it ran before. The
current span travels in contextvars: HTTP integrations send it on as W3C `traceparent` and AWS's
`X-Amzn-Trace-Id` (`http_client.send` asks `trace_headers()`), and a handler reads the same two headers from
`current_trace_headers()`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from wsgw.errors import ConfigError
from wsgw.observe.settings import TracingSettings, tracing_unavailable

P = ParamSpec("P")
R = TypeVar("R")

_enabled = False          # any node of this process traces: outgoing HTTP calls look for a current span


def enabled() -> bool:
    return _enabled


class Tracing:
    """One node's tracer; `exported` holds finished spans when the exporter is `memory` (tests)."""

    def __init__(self, settings: TracingSettings) -> None:
        problem = tracing_unavailable()
        if problem is not None:
            raise ConfigError.single("tracing", problem)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        global _enabled
        self.provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
        self.exported: InMemorySpanExporter | None = None
        exporter: SpanExporter
        if settings.exporter == "memory":
            exporter = self.exported = InMemorySpanExporter()
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            if settings.exporter == "console":
                from opentelemetry.sdk.trace.export import ConsoleSpanExporter
                exporter = ConsoleSpanExporter()
            else:
                try:
                    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
                except ImportError as exc:
                    raise ConfigError.single("tracing.exporter", "otlp needs opentelemetry-exporter-otlp-proto-http "
                                             "(pip install 'wsgw[otel]'), or use exporter: console") from exc
                exporter = OTLPSpanExporter(endpoint=settings.endpoint)
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("wsgw")
        _enabled = True

    def wrap(self, name: str, call: Callable[P, Awaitable[R]],
             attributes: Callable[..., dict[str, Any]] | None = None) -> Callable[P, Awaitable[R]]:
        """`call` inside a span named `name` (attributes read from its arguments)."""
        tracer = self.tracer

        @functools.wraps(call)
        async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
            with tracer.start_as_current_span(name, attributes=attributes(*args) if attributes else None):
                return await call(*args, **kwargs)
        return traced

    def close(self) -> None:
        self.provider.shutdown()


def trace_headers() -> dict[str, str]:
    """`traceparent` (W3C) and `X-Amzn-Trace-Id` of the current span; {} when nothing is traced."""
    if not _enabled:
        return {}
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return {}
    headers: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(headers)
    trace_id = f"{span.trace_id:032x}"
    sampled = "1" if span.trace_flags.sampled else "0"
    headers["X-Amzn-Trace-Id"] = f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={span.span_id:016x};Sampled={sampled}"
    return headers


#: What a handler calls to continue the trace (e.g. on its own outgoing requests).
current_trace_headers = trace_headers
