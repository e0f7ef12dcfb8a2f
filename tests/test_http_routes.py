"""HTTP API route keys and matching, with plain values: AWS's own routing table first."""

from __future__ import annotations

import pytest

from wsgw.rest.routes import BadPath, RouteKeyError, RouteTable, parse_route_key, split_path

AWS_EXAMPLE = ["GET /pets/dog/1", "GET /pets/dog/{id}", "GET /pets/{proxy+}", "ANY /{proxy+}", "$default"]


def table(keys: list[str]) -> RouteTable[str]:
    return RouteTable([(parse_route_key(k), k) for k in keys])


def pick(t: RouteTable[str], method: str, path: str) -> str | None:
    found = t.match(method, split_path(path))
    return None if found is None else found.value


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/pets/dog/1", "GET /pets/dog/1"),          # the static route
    ("GET", "/pets/dog/2", "GET /pets/dog/{id}"),       # full match with a variable
    ("GET", "/pets/cat/1", "GET /pets/{proxy+}"),       # only the greedy GET route fits
    ("POST", "/test/5", "ANY /{proxy+}"),               # ANY catches methods nobody defined
    ("GET", "/", "$default"),                           # greedy needs at least one segment
])
def test_aws_documented_routing_table_picks_the_most_specific_route(method: str, path: str, expected: str) -> None:
    assert pick(table(AWS_EXAMPLE), method, path) == expected


def test_order_of_definition_does_not_matter() -> None:
    assert pick(table(list(reversed(AWS_EXAMPLE))), "GET", "/pets/dog/2") == "GET /pets/dog/{id}"


def test_path_variables_and_greedy_remainder_are_decoded_parameters() -> None:
    t = table(["POST /rooms/{name}/messages", "GET /files/{proxy+}"])
    found = t.match("POST", split_path("/rooms/the%20lobby/messages"))
    assert found is not None and found.path_parameters == {"name": "the lobby"}
    found = t.match("GET", split_path("/files/a/b%2Bc/d.txt"))
    assert found is not None and found.path_parameters == {"proxy": "a/b+c/d.txt"}


def test_named_method_beats_any_on_the_same_path_and_literal_beats_variable() -> None:
    t = table(["ANY /rooms", "GET /rooms", "GET /{what}", "GET /{a}/x", "GET /b/{c}"])
    assert pick(t, "GET", "/rooms") == "GET /rooms"
    assert pick(t, "DELETE", "/rooms") == "ANY /rooms"
    assert pick(t, "GET", "/other") == "GET /{what}"
    assert pick(t, "GET", "/b/x") == "GET /b/{c}"       # the leftmost literal decides


def test_wrong_method_or_unknown_path_without_default_matches_nothing() -> None:
    t = table(["GET /rooms"])
    assert pick(t, "POST", "/rooms") is None           # AWS answers 404, not 405
    assert pick(t, "GET", "/rooms/") is None           # a trailing slash is another path
    assert pick(t, "GET", "/Rooms") is None            # paths are case-sensitive
    assert pick(t, "GET", "/rooms/x") is None


@pytest.mark.parametrize("key", ["GET rooms", "FETCH /rooms", "GET", "GET /rooms/", "GET //rooms", "get /rooms",
                                 "GET /{proxy+}/x", "GET /{a}/{a}", "GET /ro oms", "GET /{}", "GET /a{b}"])
def test_malformed_route_keys_are_refused_with_a_fix(key: str) -> None:
    with pytest.raises(RouteKeyError):
        parse_route_key(key)


@pytest.mark.parametrize("path", ["/a/%zz", "/a/%4", "/a/%", "/a/%e9", "/a/%00", "/a/..", "/a/.", "/a/%2e%2e",
                                  "/files/a%2F..%2Fsecret"])
def test_bad_paths_are_refused_not_guessed(path: str) -> None:
    with pytest.raises(BadPath):
        split_path(path)


def test_utf8_paths_decode() -> None:
    assert split_path("/caf%C3%A9/x") == ["café", "x"]
    assert split_path("/") == []
