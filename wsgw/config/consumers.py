"""`consumers:`: where the gateway takes pushes from workers (a Redis stream with a consumer group, a NATS
subject, a RabbitMQ queue), where it reports results and dead-letters poison messages; pure, no I/O.

    consumers:
      - type: redis_stream     # stream (required), group (wsgw), url (the registry's), results, deadLetter
        stream: pushes
      - type: nats             # subject (required), queue (wsgw), url, deadLetter (a subject); results: the reply
        subject: wsgw.push     # jetstream: true → a durable pull consumer (durable, default the queue name),
                               # acked after the write; results (a subject), maxAttempts, ackWaitSeconds
      - type: amqp             # queue (required, declared durable), url, results, deadLetter (queues)
        queue: wsgw.push
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wsgw.config.common import did_you_mean

CONSUMER_TYPES = {
    "redis_stream": ({"stream"}, {"url", "group", "results", "deadLetter", "maxBytes", "maxAttempts"}),
    "nats": ({"subject"}, {"url", "queue", "deadLetter", "maxBytes", "jetstream", "durable", "results",
                           "maxAttempts", "ackWaitSeconds", "prefetch"}),
    "amqp": ({"queue"}, {"url", "results", "deadLetter", "maxBytes", "maxAttempts", "prefetch"}),
}
SCHEMES = {"redis_stream": ("redis", "rediss", "unix"), "nats": ("nats", "tls"), "amqp": ("amqp", "amqps")}
DEFAULT_URLS = {"nats": "nats://127.0.0.1:4222", "amqp": "amqp://guest:guest@127.0.0.1:5672/"}
DURABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_MAX_BYTES = 128 * 1024        # AWS's limit on one @connections POST (and one frame)


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """One source of pushes. `source`: the stream, subject or queue; `url` None means the registry's Redis."""

    type: str
    source: str
    url: str | None
    group: str = "wsgw"              # Redis consumer group / NATS queue group
    results: str | None = None       # result stream / queue (NATS answers on the message's reply subject)
    dead_letter: str | None = None   # stream / subject / queue poison messages go to, with the reason
    max_bytes: int = DEFAULT_MAX_BYTES
    max_attempts: int = 5            # deliveries of one push that failed transiently before it is dead-lettered
    prefetch: int = 64
    key: str = "consumers"
    jetstream: bool = False          # NATS: a durable JetStream pull consumer instead of a core subscription
    durable: str | None = None       # its durable name (shared by every node); None: the queue group's name
    ack_wait_seconds: int = 30       # NATS JetStream: unacked this long (a node died mid-push) → redelivered


def parse_consumers(raw: Any, add: Callable[[str, str], None]) -> tuple[ConsumerSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        add("consumers", "must be a list of {type: redis_stream|nats|amqp, …}")
        return ()
    specs: list[ConsumerSpec] = []
    for index, item in enumerate(raw):
        key = f"consumers[{index}]"
        if not isinstance(item, dict):
            add(key, "must be a mapping with 'type'")
            continue
        kind = item.get("type")
        if kind not in CONSUMER_TYPES:
            add(f"{key}.type", "must be one of: " + ", ".join(CONSUMER_TYPES) + did_you_mean(str(kind), CONSUMER_TYPES))
            continue
        required, optional = CONSUMER_TYPES[kind]
        allowed = required | optional | {"type"}
        bad = False
        for name in sorted(set(item) - allowed):
            add(f"{key}.{name}", f"unknown option for a {kind} consumer" + did_you_mean(name, allowed))
            bad = True
        for name in sorted(required - set(item)):
            add(f"{key}.{name}", "missing")
            bad = True
        texts = {}
        for name in ("stream", "subject", "queue", "url", "group", "results", "deadLetter", "durable"):
            value = item.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                add(f"{key}.{name}", "must be a non-empty string")
                bad = True
            texts[name] = value
        url = texts["url"] or DEFAULT_URLS.get(kind)
        if url is not None and urlsplit(url).scheme not in SCHEMES[kind]:
            add(f"{key}.url", f"must be a {' or '.join(SCHEMES[kind])} URL")
            bad = True
        numbers = {}
        for name, default, low, high in (("maxBytes", DEFAULT_MAX_BYTES, 1, 64 << 20), ("maxAttempts", 5, 1, 1000),
                                         ("prefetch", 64, 1, 10_000)):
            value = item.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                add(f"{key}.{name}", f"must be a whole number from {low} to {high}")
                bad = True
            numbers[name] = value
        jetstream = item.get("jetstream", False)
        if not isinstance(jetstream, bool):
            add(f"{key}.jetstream", "must be true or false")
            bad = True
        if kind == "nats" and not jetstream:
            for name in ("durable", "results", "maxAttempts", "ackWaitSeconds", "prefetch"):
                if name in item:
                    add(f"{key}.{name}", "only with jetstream: true (core NATS answers on the reply subject)")
                    bad = True
        durable = texts["durable"] or (texts["queue"] if kind == "nats" else None) or "wsgw"
        if kind == "nats" and jetstream and not DURABLE_NAME.fullmatch(durable):
            add(f"{key}.{'durable' if texts['durable'] else 'queue'}", "a JetStream durable name is letters, digits, "
                "'-' and '_' (no '.', '*', '>' or spaces)")
            bad = True
        ack_wait = item.get("ackWaitSeconds", 30)
        if isinstance(ack_wait, bool) or not isinstance(ack_wait, int) or not 1 <= ack_wait <= 3600:
            add(f"{key}.ackWaitSeconds", "must be a whole number from 1 to 3600")
            bad = True
        if bad:
            continue
        source = texts["stream"] or texts["subject"] or texts["queue"]
        group = texts["group"] or (item.get("queue") if kind == "nats" else None) or "wsgw"
        specs.append(ConsumerSpec(kind, str(source), url, str(group), texts["results"], texts["deadLetter"],
                                  numbers["maxBytes"], numbers["maxAttempts"], numbers["prefetch"], key,
                                  jetstream, durable if kind == "nats" and jetstream else None, ack_wait))
    return tuple(specs)
