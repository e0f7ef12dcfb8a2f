"""The one header type of both fronts: lines kept as sent, looked up by case-insensitive name."""

from __future__ import annotations

from wsgw.headers import Headers
from wsgw.request import HttpRequest

LINES = [("Host", "a.example"), ("X-Multi", "one"), ("x-multi", "two"), ("Sec-WebSocket-Protocol", "chat, , v2"),
         ("sec-websocket-protocol", "jwt.token")]


def test_lookups_fold_case_and_lines_keep_their_spelling_and_order() -> None:
    headers = Headers(LINES)
    assert list(headers) == LINES
    assert headers.get("HOST") == "a.example" and headers.get("x-MULTI") == "one"
    assert headers.last("X-Multi") == "two"
    assert headers.get_all("X-MULTI") == ["one", "two"]
    assert headers.get("Missing") is None and headers.last("Missing") is None and headers.get_all("Missing") == []


def test_an_empty_value_is_present_not_missing() -> None:
    headers = Headers([("Origin", "")])
    assert headers.get("origin") == "" and headers.get_all("origin") == [""]


def test_tokens_split_every_line_on_commas_and_drop_empty_items() -> None:
    assert Headers(LINES).tokens("sec-websocket-protocol") == ["chat", "v2", "jwt.token"]
    assert Headers().tokens("sec-websocket-protocol") == []


def test_headers_are_an_immutable_sequence_of_lines() -> None:
    headers = Headers(iter(LINES))          # any iterable of lines, read once
    assert len(headers) == len(LINES) and headers[0] == ("Host", "a.example")
    assert headers == Headers(LINES) and isinstance(headers, tuple)


def test_a_request_reads_headers_and_names_its_protocol_as_events_do() -> None:
    request = HttpRequest("GET", "/dev", "", Headers([("User-Agent", "curl")]), b"", "10.0.0.1", http_version="1.0")
    assert request.header("user-agent") == "curl" and request.header("host") is None
    assert request.protocol == "HTTP/1.0"
