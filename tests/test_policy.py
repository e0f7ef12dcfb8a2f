"""The policy layer: authorizer output validation, IAM evaluation for execute-api ARNs, the decision cache."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from wsgw.aws.policy import (
    AUTHORIZER_RESULT_MAX_BYTES,
    AuthorizerDecision,
    AuthorizerResponseError,
    DecisionCache,
    Statement,
    entry_cost,
    parse_authorizer_response,
    parse_simple_response,
)

CONNECT = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/dev/$connect"
DEFAULT = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/dev/$default"
PROD_CONNECT = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/$connect"


def response(*statements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An authorizer response in AWS's documented shape."""
    body: dict[str, Any] = {
        "principalId": "user-1",
        "policyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
    }
    body.update(extra)
    return body


def allow(resource: Any, action: Any = "execute-api:Invoke") -> dict[str, Any]:
    return {"Action": action, "Effect": "Allow", "Resource": resource}


def deny(resource: Any, action: Any = "execute-api:Invoke") -> dict[str, Any]:
    return {"Action": action, "Effect": "Deny", "Resource": resource}


def decide(*statements: dict[str, Any], **extra: Any) -> AuthorizerDecision:
    return parse_authorizer_response(response(*statements, **extra))


# --------------------------------------------------------------------------- evaluation


def test_allow_for_the_exact_method_arn_allows_it() -> None:
    assert decide(allow(CONNECT)).evaluate(CONNECT)


def test_star_in_stage_and_route_allows_any_stage_and_route() -> None:
    decision = decide(allow("arn:aws:execute-api:us-east-1:123456789012:abcdef123/*/*"))
    assert decision.evaluate(CONNECT)
    assert decision.evaluate(PROD_CONNECT)
    assert decision.evaluate(DEFAULT)
    assert not decision.evaluate("arn:aws:execute-api:us-east-1:123456789012:otherapi/dev/$connect")


def test_star_runs_across_slashes_within_the_resource_segment() -> None:
    decision = decide(allow("arn:aws:execute-api:us-east-1:123456789012:abcdef123/*"))
    assert decision.evaluate(CONNECT)
    assert decision.evaluate("arn:aws:execute-api:us-east-1:123456789012:abcdef123/dev/GET/rooms/lobby")


def test_star_for_region_and_account_matches_any() -> None:
    assert decide(allow("arn:aws:execute-api:*:*:abcdef123/dev/$connect")).evaluate(CONNECT)


def test_star_inside_a_segment_does_not_cross_a_colon() -> None:
    # `us-*-1` ends neither the ARN nor its segment, so it stays inside the region segment.
    decision = decide(allow("arn:aws:execute-api:us-*1:123456789012:abcdef123/dev/$connect"))
    assert decision.evaluate(CONNECT)
    assert not decision.evaluate("arn:aws:execute-api:us-east-1:9:1:abcdef123/dev/$connect")


def test_star_at_the_end_of_a_segment_may_cross_colons() -> None:
    assert decide(allow("arn:aws:execute-api:*")).evaluate(CONNECT)
    assert decide(allow("*")).evaluate(CONNECT)


def test_question_mark_matches_exactly_one_character() -> None:
    decision = decide(allow("arn:aws:execute-api:us-east-1:123456789012:abcdef123/de?/$connect"))
    assert decision.evaluate(CONNECT)
    assert not decision.evaluate("arn:aws:execute-api:us-east-1:123456789012:abcdef123/de/$connect")
    assert not decision.evaluate("arn:aws:execute-api:us-east-1:123456789012:abcdef123/devv/$connect")


def test_dollar_and_dots_in_patterns_are_literal() -> None:
    decision = decide(allow("arn:aws:execute-api:us-east-1:123456789012:abcdef123/dev/$connect"))
    assert not decision.evaluate("arn:aws:execute-api:us-east-1:123456789012:abcdef123/dev/Xconnect")


def test_resources_are_case_sensitive() -> None:
    decision = decide(allow("arn:aws:execute-api:us-east-1:123456789012:abcdef123/DEV/$connect"))
    assert not decision.evaluate(CONNECT)


def test_many_wildcards_cannot_stall_evaluation() -> None:
    # A backtracking regex needs seconds for four of these against a 200-character ARN.
    hostile = "arn:aws:execute-api:us-east-1:1:" + "*a" * 500 + "*b"
    decision = decide(allow(hostile))
    started = time.perf_counter()
    assert not decision.evaluate("arn:aws:execute-api:us-east-1:1:" + "a" * 1500)
    assert time.perf_counter() - started < 1.0


def test_explicit_deny_beats_allow() -> None:
    decision = decide(allow("arn:aws:execute-api:*:*:abcdef123/*"), deny(CONNECT))
    assert not decision.evaluate(CONNECT)
    assert decision.evaluate(DEFAULT)


def test_deny_beats_allow_whatever_the_statement_order() -> None:
    decision = decide(deny(CONNECT), allow(CONNECT))
    assert not decision.evaluate(CONNECT)


def test_no_matching_allow_is_an_implicit_deny() -> None:
    assert not decide(allow(DEFAULT)).evaluate(CONNECT)
    assert not decide().evaluate(CONNECT)


def test_deny_only_policy_denies() -> None:
    assert not decide(deny(CONNECT)).evaluate(CONNECT)


def test_policy_for_another_routes_arn_denies_this_one() -> None:
    decision = decide(allow(PROD_CONNECT))
    assert not decision.evaluate(CONNECT)
    assert decision.evaluate(PROD_CONNECT)


def test_resource_list_allows_each_listed_arn() -> None:
    decision = decide(allow([DEFAULT, PROD_CONNECT]))
    assert decision.evaluate(DEFAULT)
    assert decision.evaluate(PROD_CONNECT)
    assert not decision.evaluate(CONNECT)


def test_action_list_matches_any_listed_action() -> None:
    decision = decide(allow(CONNECT, action=["execute-api:ManageConnections", "execute-api:Invoke"]))
    assert decision.evaluate(CONNECT)


def test_statement_for_another_action_does_not_apply() -> None:
    decision = decide(allow(CONNECT, action="execute-api:ManageConnections"))
    assert not decision.evaluate(CONNECT)
    assert decision.evaluate(CONNECT, action="execute-api:ManageConnections")


@pytest.mark.parametrize("action", ["execute-api:*", "*", "execute-api:Inv*", "execute-api:Invok?"])
def test_wildcard_actions_cover_invoke(action: str) -> None:
    assert decide(allow(CONNECT, action=action)).evaluate(CONNECT)


@pytest.mark.parametrize("action", ["EXECUTE-API:invoke", "Execute-Api:INVOKE"])
def test_actions_are_case_insensitive(action: str) -> None:
    assert decide(allow(CONNECT, action=action)).evaluate(CONNECT)


def test_wildcard_deny_action_denies_invoke() -> None:
    decision = decide(allow(CONNECT), deny(CONNECT, action="execute-api:*"))
    assert not decision.evaluate(CONNECT)


def test_not_resource_allows_everything_but_the_listed_arns() -> None:
    decision = decide({"Effect": "Allow", "Action": "execute-api:Invoke", "NotResource": DEFAULT})
    assert decision.evaluate(CONNECT)
    assert not decision.evaluate(DEFAULT)


def test_not_action_applies_to_other_actions_only() -> None:
    decision = decide(
        allow("*"),
        {"Effect": "Deny", "NotAction": "execute-api:Invoke", "Resource": "*"},
    )
    assert decision.evaluate(CONNECT)
    assert not decision.evaluate(CONNECT, action="execute-api:ManageConnections")


def test_statement_as_a_single_dict_is_accepted() -> None:
    body = {"principalId": "u", "policyDocument": {"Version": "2012-10-17", "Statement": allow(CONNECT)}}
    decision = parse_authorizer_response(body)
    assert len(decision.statements) == 1
    assert decision.evaluate(CONNECT)


def test_parsed_statement_keeps_effect_actions_and_resources() -> None:
    (statement,) = decide(allow([CONNECT, DEFAULT], action="execute-api:Invoke")).statements
    assert statement == Statement("Allow", ("execute-api:Invoke",), (CONNECT, DEFAULT))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("result", [None, "Allow", ["principalId"], 42, True])
def test_non_object_response_is_rejected(result: object) -> None:
    with pytest.raises(AuthorizerResponseError, match="authorizer response must be an object"):
        parse_authorizer_response(result)


def test_missing_policy_document_is_rejected() -> None:
    with pytest.raises(AuthorizerResponseError, match="policyDocument: missing"):
        parse_authorizer_response({"principalId": "u", "context": {}})


def test_policy_document_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(AuthorizerResponseError, match="policyDocument: must be an object"):
        parse_authorizer_response({"principalId": "u", "policyDocument": "allow"})


def test_missing_statement_is_rejected() -> None:
    with pytest.raises(AuthorizerResponseError, match=r"policyDocument\.Statement: missing"):
        parse_authorizer_response({"principalId": "u", "policyDocument": {"Version": "2012-10-17"}})


@pytest.mark.parametrize("effect", ["allow", "ALLOW", "Permit", None])
def test_effect_other_than_allow_or_deny_is_rejected(effect: object) -> None:
    with pytest.raises(AuthorizerResponseError, match=r"Statement\[0\]\.Effect: must be"):
        decide({"Effect": effect, "Action": "execute-api:Invoke", "Resource": CONNECT})


def test_missing_effect_action_or_resource_is_named() -> None:
    with pytest.raises(AuthorizerResponseError, match=r"Statement\[0\]\.Effect: missing"):
        decide({"Action": "execute-api:Invoke", "Resource": CONNECT})
    with pytest.raises(AuthorizerResponseError, match=r"Statement\[0\]\.Action: missing"):
        decide({"Effect": "Allow", "Resource": CONNECT})
    with pytest.raises(AuthorizerResponseError, match=r"Statement\[1\]\.Resource: missing"):
        decide(allow(CONNECT), {"Effect": "Allow", "Action": "execute-api:Invoke"})


def test_lower_case_policy_keys_are_rejected_with_a_hint() -> None:
    # IAM key names and the Effect value are case-sensitive (docs/policy.md); no AWS source says
    # API Gateway accepts other spellings, so wsgw refuses them with a hint rather than guessing.
    with pytest.raises(AuthorizerResponseError, match=r'unknown key .effect.*use "Effect"'):
        decide({"effect": "Allow", "action": "execute-api:Invoke", "resource": CONNECT})
    with pytest.raises(AuthorizerResponseError, match=r'policyDocument: missing \(found "policydocument"'):
        parse_authorizer_response({"principalId": "u", "policydocument": {"Statement": []}})
    with pytest.raises(AuthorizerResponseError, match=r'Statement: missing \(found "statement"'):
        parse_authorizer_response({"principalId": "u", "policyDocument": {"statement": []}})


def test_both_action_and_not_action_is_rejected() -> None:
    with pytest.raises(AuthorizerResponseError, match="both Action and NotAction"):
        decide({"Effect": "Allow", "Action": "*", "NotAction": "x:y", "Resource": "*"})


def test_condition_is_rejected_rather_than_ignored() -> None:
    with pytest.raises(AuthorizerResponseError, match=r"Statement\[0\]\.Condition"):
        decide({**allow(CONNECT), "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})


@pytest.mark.parametrize("resource", [[], [""], [CONNECT, 7], {"arn": CONNECT}, None])
def test_malformed_resource_values_are_rejected(resource: object) -> None:
    with pytest.raises(AuthorizerResponseError, match=r"Statement\[0\]\.Resource"):
        decide(allow(resource))


def test_statement_that_is_not_an_object_is_rejected() -> None:
    body = {"principalId": "u", "policyDocument": {"Statement": ["Allow"]}}
    with pytest.raises(AuthorizerResponseError, match=r"Statement\[0\]: must be an object"):
        parse_authorizer_response(body)


def test_nested_context_object_is_rejected_naming_the_key() -> None:
    with pytest.raises(AuthorizerResponseError) as caught:
        decide(allow(CONNECT), context={"user": {"id": 1}})
    assert str(caught.value) == (
        "context.user: nested objects are not allowed (values must be string, number or boolean)"
    )


def test_context_array_is_rejected_naming_the_key() -> None:
    with pytest.raises(AuthorizerResponseError, match=r"context\.roles: arrays are not allowed"):
        decide(allow(CONNECT), context={"roles": ["admin"]})


def test_none_context_value_is_rejected() -> None:
    with pytest.raises(AuthorizerResponseError, match=r"context\.email: null is not allowed"):
        decide(allow(CONNECT), context={"email": None})


def test_context_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(AuthorizerResponseError, match="context: must be an object"):
        decide(allow(CONNECT), context=["a"])


def test_missing_or_null_context_is_empty() -> None:
    assert decide(allow(CONNECT)).context == {}
    assert decide(allow(CONNECT), context=None).context == {}


def test_context_numbers_and_booleans_are_kept_as_is() -> None:
    context = {"name": "ann", "count": 3, "ratio": 0.5, "admin": True, "banned": False}
    decision = decide(allow(CONNECT), context=context)
    assert decision.context == context
    assert decision.context["admin"] is True
    assert decision.context["count"] == 3 and isinstance(decision.context["count"], int)


def test_context_is_copied_not_aliased() -> None:
    context = {"name": "ann"}
    decision = decide(allow(CONNECT), context=context)
    context["name"] = "mallory"
    assert decision.context == {"name": "ann"}


def test_principal_id_and_usage_identifier_key_are_read() -> None:
    decision = decide(allow(CONNECT), usageIdentifierKey="key-123")
    assert decision.principal_id == "user-1"
    assert decision.usage_identifier_key == "key-123"


def test_missing_principal_id_is_none_and_non_string_is_rejected() -> None:
    body = response(allow(CONNECT))
    del body["principalId"]
    assert parse_authorizer_response(body).principal_id is None
    with pytest.raises(AuthorizerResponseError, match="principalId: must be a string"):
        parse_authorizer_response({**body, "principalId": 42})


def test_response_over_8_kb_is_rejected() -> None:
    body = response(allow(CONNECT), context={"pad": "x" * AUTHORIZER_RESULT_MAX_BYTES})
    with pytest.raises(AuthorizerResponseError, match=r"the limit is 8192 bytes"):
        parse_authorizer_response(body)


def test_response_just_under_8_kb_is_accepted_and_limit_can_be_lifted() -> None:
    body = response(allow(CONNECT), context={"pad": ""})
    base = len(json.dumps(body, separators=(",", ":")).encode())
    body["context"]["pad"] = "x" * (AUTHORIZER_RESULT_MAX_BYTES - base)
    assert parse_authorizer_response(body).evaluate(CONNECT)
    body["context"]["pad"] += "x"
    with pytest.raises(AuthorizerResponseError):
        parse_authorizer_response(body)
    assert parse_authorizer_response(body, max_bytes=None).evaluate(CONNECT)


def test_non_json_value_is_rejected() -> None:
    with pytest.raises(AuthorizerResponseError, match="not JSON-serialisable"):
        parse_authorizer_response({**response(allow(CONNECT)), "extra": {1, 2}})


def test_http_api_context_may_hold_arrays_and_objects_when_not_flat() -> None:
    context = {"roles": ["a", "b"], "user": {"id": 1}}
    decision = parse_authorizer_response(response(allow(CONNECT), context=context), flat_context=False)
    assert decision.context == context


# --------------------------------------------------------------------------- authorizer_context


def test_authorizer_context_has_principal_every_context_key_and_latency() -> None:
    decision = decide(allow(CONNECT), context={"name": "ann", "count": 3, "admin": True})
    assert decision.authorizer_context(12) == {
        "principalId": "user-1",
        "name": "ann",
        "count": 3,
        "admin": True,
        "integrationLatency": 12,
    }


def test_context_cannot_override_principal_id_or_latency() -> None:
    decision = decide(allow(CONNECT), context={"principalId": "admin", "integrationLatency": 0})
    assert decision.authorizer_context(7) == {"principalId": "user-1", "integrationLatency": 7}


def test_authorizer_context_can_stringify_like_rest_proxy_events() -> None:
    decision = decide(allow(CONNECT), context={"name": "ann", "count": 3, "ratio": 0.5, "admin": False})
    assert decision.authorizer_context(1, stringify_values=True) == {
        "principalId": "user-1",
        "name": "ann",
        "count": "3",
        "ratio": "0.5",
        "admin": "false",
        "integrationLatency": 1,
    }


def test_authorizer_context_returns_a_fresh_dict() -> None:
    decision = decide(allow(CONNECT), context={"name": "ann"})
    decision.authorizer_context(1)["name"] = "changed"
    assert decision.authorizer_context(1)["name"] == "ann"


# --------------------------------------------------------------------------- simple responses


def test_simple_response_true_allows_any_arn_and_action() -> None:
    decision = parse_simple_response({"isAuthorized": True, "context": {"user": "ann"}})
    assert decision is not None
    assert decision.evaluate(CONNECT)
    assert decision.evaluate("arn:aws:execute-api:eu-west-1:1:other/prod/GET/x", action="x:y")
    assert decision.context == {"user": "ann"}


def test_simple_response_false_denies_everything() -> None:
    decision = parse_simple_response({"isAuthorized": False})
    assert decision is not None
    assert not decision.evaluate(CONNECT)


def test_simple_response_context_may_hold_arrays_and_objects() -> None:
    context = {"arrayKey": ["value1", "value2"], "mapKey": {"value1": "value2"}, "n": None}
    decision = parse_simple_response({"isAuthorized": True, "context": context})
    assert decision is not None and decision.context == context


def test_policy_shaped_response_is_not_a_simple_response() -> None:
    assert parse_simple_response(response(allow(CONNECT))) is None


@pytest.mark.parametrize("value", ["true", 1, None])
def test_simple_response_needs_a_boolean(value: object) -> None:
    with pytest.raises(AuthorizerResponseError, match="isAuthorized: must be a boolean"):
        parse_simple_response({"isAuthorized": value})


def test_simple_response_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(AuthorizerResponseError):
        parse_simple_response(True)


# --------------------------------------------------------------------------- cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_hit_within_ttl() -> None:
    clock = FakeClock()
    cache = DecisionCache(ttl_seconds=300, clock=clock)
    decision = decide(allow(CONNECT))
    cache.put(("Bearer abc",), decision)
    clock.now += 299.9
    assert cache.get(("Bearer abc",)) is decision


def test_cache_miss_after_ttl() -> None:
    clock = FakeClock()
    cache = DecisionCache(ttl_seconds=300, clock=clock)
    cache.put(("Bearer abc",), decide(allow(CONNECT)))
    clock.now += 300
    assert cache.get(("Bearer abc",)) is None
    assert len(cache) == 0


def test_cache_with_ttl_zero_stores_nothing() -> None:
    cache = DecisionCache(ttl_seconds=0, clock=FakeClock())
    cache.put(("Bearer abc",), decide(allow(CONNECT)))
    assert cache.get(("Bearer abc",)) is None
    assert len(cache) == 0


def test_cache_stores_deny_decisions_too() -> None:
    cache = DecisionCache(ttl_seconds=60, clock=FakeClock())
    denied = decide(deny(CONNECT))
    cache.put(("t",), denied)
    cached = cache.get(("t",))
    assert cached is denied and not cached.evaluate(CONNECT)


def test_cache_lru_bound_evicts_the_least_recently_used() -> None:
    cache = DecisionCache(ttl_seconds=60, max_entries=2, clock=FakeClock())
    a, b, c = decide(allow(CONNECT)), decide(allow(DEFAULT)), decide(allow(PROD_CONNECT))
    cache.put(("a",), a)
    cache.put(("b",), b)
    cache.put(("c",), c)
    assert len(cache) == 2
    assert cache.get(("a",)) is None
    assert cache.get(("b",)) is b and cache.get(("c",)) is c


def test_cache_get_refreshes_recency() -> None:
    cache = DecisionCache(ttl_seconds=60, max_entries=2, clock=FakeClock())
    a, b, c = decide(allow(CONNECT)), decide(allow(DEFAULT)), decide(allow(PROD_CONNECT))
    cache.put(("a",), a)
    cache.put(("b",), b)
    assert cache.get(("a",)) is a
    cache.put(("c",), c)
    assert cache.get(("b",)) is None
    assert cache.get(("a",)) is a


def test_cache_distinct_keys_do_not_collide() -> None:
    cache = DecisionCache(ttl_seconds=60, clock=FakeClock())
    first, second = decide(allow(CONNECT)), decide(deny(CONNECT))
    cache.put(("a,b", "c"), first)
    cache.put(("a", "b,c"), second)
    assert cache.get(("a,b", "c")) is first
    assert cache.get(("a", "b,c")) is second
    assert cache.get(("a", "b", "c")) is None


def test_cache_put_replaces_and_restarts_ttl() -> None:
    clock = FakeClock()
    cache = DecisionCache(ttl_seconds=10, clock=clock)
    old, new = decide(allow(CONNECT)), decide(deny(CONNECT))
    cache.put(("t",), old)
    clock.now += 8
    cache.put(("t",), new)
    clock.now += 8
    assert cache.get(("t",)) is new


def test_cache_is_bounded_by_bytes_not_only_by_entries() -> None:
    # 10,000 distinct 7 KB identities (each a valid header) must not hold 70 MB.
    cache = DecisionCache(ttl_seconds=60, clock=FakeClock(), max_bytes=1_000_000)
    decision = decide(allow(CONNECT))
    for i in range(10_000):
        cache.put((f"{i:05d}" + "x" * 7000,), decision)
    assert cache.bytes <= 1_000_000
    assert 100 <= len(cache) < 1_000_000 // 7000 + 1
    assert cache.get(("09999" + "x" * 7000,)) is decision      # the newest stays
    assert cache.get(("00000" + "x" * 7000,)) is None          # the oldest went first


def test_cache_byte_count_follows_replacements_expiry_and_clear() -> None:
    clock = FakeClock()
    cache = DecisionCache(ttl_seconds=10, clock=clock)
    decision = decide(allow(CONNECT))
    cache.put(("t",), decision)
    one = cache.bytes
    assert one == entry_cost(("t",), decision) and one > decision.size_bytes > 0
    cache.put(("t",), decision)
    assert cache.bytes == one
    clock.now += 10
    assert cache.get(("t",)) is None and cache.bytes == 0
    cache.put(("u",), decision)
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


def test_cache_skips_an_entry_larger_than_the_whole_bound() -> None:
    cache = DecisionCache(ttl_seconds=60, clock=FakeClock(), max_bytes=1000)
    cache.put(("x" * 2000,), decide(allow(CONNECT)))
    assert len(cache) == 0 and cache.bytes == 0


@pytest.mark.parametrize(("ttl", "max_entries"), [(-1, 10), (60, 0)])
def test_cache_rejects_nonsense_settings(ttl: float, max_entries: int) -> None:
    with pytest.raises(ValueError):
        DecisionCache(ttl_seconds=ttl, max_entries=max_entries)
