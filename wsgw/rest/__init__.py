"""The REST front: `METHOD /{stage}/path` served as an AWS HTTP API (payload format 2.0).

`routes` (route keys and matching), `events` (payload 2.0 events and results) and `cors` are pure and
tested with plain values; `front.RestFront` runs one request through them with the dependencies it is
given. The `http:` section is parsed by `wsgw.http_config`. This package imports nothing by itself so
that the pure modules stay cheap to import.
"""
