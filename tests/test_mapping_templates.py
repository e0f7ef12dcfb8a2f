"""Mapping templates: AWS's documented examples, the Velocity AWS runs, and the sandbox's bounds."""

from __future__ import annotations

import time

import orjson
import pytest

from wsgw.aws.jsonpath import JsonPathError, compile_jsonpath
from wsgw.aws.templates import Limits, TemplateError, compile_template


def render(template: str, body: str = "", **kwargs: object) -> str:
    return compile_template(template).render(body, **kwargs)  # type: ignore[arg-type]


def render_error(template: str, body: str = "", **kwargs: object) -> str:
    with pytest.raises(TemplateError) as info:
        render(template, body, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- AWS's documented examples


CONTEXT = {
    "stage": "prod",
    "requestId": "abcdefg-000-000-0000-abcdefg",
    "apiId": "abcd1234",
    "resourcePath": "/",
    "resourceId": "efg567",
    "httpMethod": "GET",
    "identity": {
        "sourceIp": "192.0.2.1",
        "userAgent": "curl/7.84.0",
        "accountId": "111122223333",
        "apiKey": "MyTestKey",
        "caller": "ABCD-0000-12345",
        "user": "ABCD-0000-12345",
        "userArn": "arn:aws:sts::111122223333:assumed-role/Admin/carlos-salazar",
    },
}


def test_aws_example_context_variables_map_to_backend_names() -> None:
    # AWS: "Examples using variables for mapping template transformations", example 1.
    template = """{
    "stage" : "$context.stage",
    "request_id" : "$context.requestId",
    "api_id" : "$context.apiId",
    "resource_path" : "$context.resourcePath",
    "resource_id" : "$context.resourceId",
    "http_method" : "$context.httpMethod",
    "source_ip" : "$context.identity.sourceIp",
    "user-agent" : "$context.identity.userAgent",
    "account_id" : "$context.identity.accountId",
    "api_key" : "$context.identity.apiKey",
    "caller" : "$context.identity.caller",
    "user" : "$context.identity.user",
    "user_arn" : "$context.identity.userArn"
}"""
    assert orjson.loads(render(template, context=CONTEXT)) == {
        "stage": "prod",
        "request_id": "abcdefg-000-000-0000-abcdefg",
        "api_id": "abcd1234",
        "resource_path": "/",
        "resource_id": "efg567",
        "http_method": "GET",
        "source_ip": "192.0.2.1",
        "user-agent": "curl/7.84.0",
        "account_id": "111122223333",
        "api_key": "MyTestKey",
        "caller": "ABCD-0000-12345",
        "user": "ABCD-0000-12345",
        "user_arn": "arn:aws:sts::111122223333:assumed-role/Admin/carlos-salazar",
    }


def test_aws_example_all_params_pass_through_as_json() -> None:
    # AWS: "$input Variable Template Examples", parameter mapping template.
    template = """#set($allParams = $input.params())
{
  "params" : {
    #foreach($type in $allParams.keySet())
    #set($params = $allParams.get($type))
    "$type" : {
      #foreach($paramName in $params.keySet())
      "$paramName" : "$util.escapeJavaScript($params.get($paramName))"
      #if($foreach.hasNext),#end
      #end
    }
    #if($foreach.hasNext),#end
    #end
  }
}"""
    params = {"path": {"id": "abc"}, "querystring": {"q": "cat"}, "header": {"h1": "v1", "Host": "x"}}
    assert orjson.loads(render(template, params=params)) == {"params": params}


def test_aws_example_name_from_query_and_whole_body() -> None:
    template = '{\n    "name" : "$input.params(\'name\')",\n    "body" : $input.json(\'$\')\n}'
    out = render(template, '{"a": [1, 2]}', params={"querystring": {"name": "Marco"}})
    assert orjson.loads(out) == {"name": "Marco", "body": {"a": [1, 2]}}


def test_aws_example_json_of_one_property() -> None:
    template = '{"name" : "$input.params(\'name\')", "body" : $input.json(\'$.mykey\')}'
    out = render(template, '{"mykey": {"x": true}, "other": 1}', params={"header": {"name": "h"}})
    assert orjson.loads(out) == {"name": "h", "body": {"x": True}}


def test_aws_example_things_id_and_count() -> None:
    # AWS: "Example Request and Response Using $input" (POST /things/abc).
    template = '{\n    "id" : "$input.params(\'id\')",\n    "count" : "$input.path(\'$.things\').size()"\n}'
    body = '{"things" : {"1" : {}, "2" : {}, "3" : {}}}'
    assert orjson.loads(render(template, body, params={"path": {"id": "abc"}})) == {"id": "abc", "count": "3"}


def test_aws_example_parse_json_reads_a_nested_array_item() -> None:
    # AWS: $util.parseJson() reference example.
    template = (
        "#set ($errorMessageObj = $util.parseJson($input.path('$.errorMessage')))\n"
        "{\n   \"errorMessageObjKey2ArrVal\" : $errorMessageObj.key2.arr[0]\n}\n"
    )
    body = '{"errorMessage":"{\\"key1\\":\\"var1\\",\\"key2\\":{\\"arr\\":[1,2,3]}}"}'
    assert orjson.loads(render(template, body)) == {"errorMessageObjKey2ArrVal": 1}


def test_aws_example_escape_javascript_then_unescape_single_quotes() -> None:
    # AWS: $util.escapeJavaScript(data).replaceAll("\\'","'") turns \' back into ' for JSON.
    template = "$util.escapeJavaScript($input.path('$.name')).replaceAll(\"\\\\'\",\"'\")"
    assert render(template, '{"name": "Molly\'s \\"dog\\""}') == "Molly's \\\"dog\\\""


def test_escape_javascript_escapes_single_quotes_as_aws_documents() -> None:
    assert render("$util.escapeJavaScript($input.path('$.s'))", '{"s": "it\'s\\n\\u00e9/"}') == "it\\'s\\n\\u00E9\\/"


def test_aws_authorizer_context_values_are_stringified() -> None:
    # AWS: "$context.authorizer.numKey returns the "1" string, ... boolKey returns the "true" string".
    ctx = {"authorizer": {"key": "value", "numKey": 1, "boolKey": True, "principalId": "me"}}
    out = render("$context.authorizer.key|$context.authorizer.numKey|$context.authorizer.boolKey", context=ctx)
    assert out == "value|1|true"
    assert render("#if($context.authorizer.numKey == '1')str#end", context=ctx) == "str"


def test_stage_variables_in_the_three_documented_syntaxes() -> None:
    template = "$stageVariables.env|$stageVariables['env']|${stageVariables['env']}"
    assert render(template, stage_variables={"env": "beta"}) == "beta|beta|beta"


# ---------------------------------------------------------------- $input, $util, Velocity


def test_input_body_is_the_raw_payload() -> None:
    assert render("$input.body", "not json {") == "not json {"


def test_input_json_and_path_read_jsonpath() -> None:
    body = '{"a": {"b": [10, {"c": "x"}]}, "k y": 1}'
    assert render("$input.json('$.a.b[1]')", body) == '{"c":"x"}'
    assert render("$input.json(\"$['k y']\")", body) == "1"
    assert render("$input.path('$.a.b[0]')", body) == "10"
    assert render("$input.path('$.a.b[-1].c')", body) == "x"
    assert render("$input.json('$.a.b[*]')", body) == '[10,{"c":"x"}]'


def test_missing_path_renders_nothing_and_tests_false() -> None:
    assert render("[$input.path('$.nope')]", "{}") == "[]"
    assert render("#if($input.path('$.nope'))yes#{else}no#end", "{}") == "no"
    assert render("#if($undefined)yes#{else}no#end") == "no"
    assert render("[$undefined]") == "[]"


def test_input_json_of_a_missing_path_is_an_empty_json_string() -> None:
    assert render("$input.json('$.nope')", "{}") == '""'


def test_empty_body_reads_as_an_empty_object() -> None:
    assert render("$input.json('$')") == "{}"


def test_input_params_searches_path_then_query_then_header() -> None:
    params = {"path": {"id": "p"}, "querystring": {"id": "q", "x": "q"}, "header": {"X": "h", "Only": "h"}}
    assert render("$input.params('id')|$input.params('x')|$input.params('only')|[$input.params('no')]",
                  params=params) == "p|q|h|[]"


def test_values_render_as_java_does() -> None:
    body = '{"m": {"a": 1, "b": [1, {"c": 5}]}, "t": true, "f": 2.5, "n": null}'
    assert render("$input.path('$.m')", body) == '{a=1, b=[1,{"c":5}]}'
    assert render("$input.path('$.t') $input.path('$.f') [$input.path('$.n')]", body) == "true 2.5 []"
    assert render("#set($l = [1, 'a', true])$l") == "[1, a, true]"


def test_set_if_foreach_and_velocity_counters() -> None:
    template = (
        "#set($names = [])#foreach($p in $input.path('$.pets'))"
        "#if($p.price > 100)#set($ok = $names.add($p.name))#end#end"
        "#foreach($n in $names)$velocityCount:$n#if($foreach.hasNext),#end#end"
    )
    body = '{"pets": [{"name": "a", "price": 249.99}, {"name": "b", "price": 0.99}, {"name": "c", "price": 124.99}]}'
    assert render(template, body) == "1:a,2:c"


def test_map_put_answers_the_previous_value() -> None:
    assert render("#set($m = {})#set($x = $m.put('k', 1))[$x]$m.put('k', 2)$m") == "[]1{k=2}"


def test_util_base64_and_url_helpers() -> None:
    assert render("$util.base64Encode('hi there')") == "aGkgdGhlcmU="
    assert render("$util.base64Decode('aGkgdGhlcmU=')") == "hi there"
    assert render("$util.urlEncode('a b&c~*')") == "a+b%26c%7E*"
    assert render("$util.urlDecode('a+b%26c')") == "a b&c"


def test_string_methods_from_java() -> None:
    assert render("#set($s = ' Ab ')$s.trim().toLowerCase()|$s.length()|$s.contains('b')|$s.substring(1, 2)") == (
        "ab|4|true|A"
    )
    assert render("#set($s = 'a-b-c')$s.replaceAll('-(\\w)', '+$1')|$s.split('-').size()") == "a+b+c|3"


def test_number_and_string_join_as_text() -> None:
    assert render("#set($n = 1 + 2)#set($s = 'n=' + $n)$s") == "n=3"


def test_context_overrides_are_returned_and_the_callers_context_is_untouched() -> None:
    ctx = {"stage": "prod", "identity": {"sourceIp": "1.2.3.4"}}
    template = compile_template(
        "#set($context.responseOverride.status = 400)"
        "#set($context.requestOverride.header.X-Extra = 'y')"
        "#set($context.stage = 'changed')$context.stage"
    )
    result = template.render_result("", ctx)
    assert result.text == "changed"
    assert result.response_override["status"] == 400
    assert result.request_override["header"] == {"X-Extra": "y"}
    assert ctx == {"stage": "prod", "identity": {"sourceIp": "1.2.3.4"}}


def test_a_compiled_template_renders_many_messages_independently() -> None:
    template = compile_template("#set($c = $input.path('$.n'))#macro(m $x)<$x>#end#m($c)")
    assert [template.render(f'{{"n": {i}}}') for i in range(3)] == ["<0>", "<1>", "<2>"]


# ---------------------------------------------------------------- errors and hostile input


def test_malformed_json_body_fails_with_awss_message_and_without_the_body() -> None:
    message = render_error("$input.json('$')", '{"secret": "S3CRET", oops')
    assert "Could not parse request body into json" in message
    assert "S3CRET" not in message


def test_malformed_json_body_is_fine_for_a_template_that_does_not_read_it() -> None:
    assert render("#if(false)$input.json('$')#end$input.body.length()", "{bad") == "4"


def test_parse_json_of_garbage_is_a_template_error() -> None:
    assert "parseJson" in render_error("$util.parseJson('{nope')")


def test_unsupported_jsonpath_is_named() -> None:
    assert "deep scan" in render_error("$input.json('$..a')", "{}")
    with pytest.raises(JsonPathError):
        compile_jsonpath("$[?(@.a)]")
    with pytest.raises(JsonPathError):
        compile_jsonpath("a.b")


@pytest.mark.parametrize(
    "template",
    [
        "#if($a",
        "#foreach($i in $x)never ends",
        "#set($a = )",
        "#if(true)x#else",
        "${unclosed",
    ],
)
def test_syntax_errors_are_reported_at_compile_time(template: str) -> None:
    with pytest.raises(TemplateError) as info:
        compile_template(template)
    assert "syntax error" in str(info.value) or "line" in str(info.value)


def test_errors_name_the_template_position() -> None:
    assert "line 2" in render_error("ok\n#set($s = 'a')$s.nosuchmethod()")


def test_oversized_template_is_refused_at_compile() -> None:
    with pytest.raises(TemplateError, match="larger than"):
        compile_template("x" * (300 * 1024 + 1))


# ---------------------------------------------------------------- the sandbox


@pytest.mark.parametrize(
    "template",
    [
        "$input.__class__",
        "$util.__init__.__globals__",
        "#set($x = $input)$x._body",
        "$context.__class__.__mro__",
        "#set($_hidden = 1)",
        "#foreach($_i in [1])#end",
    ],
)
def test_attribute_walks_are_refused_at_compile(template: str) -> None:
    with pytest.raises(TemplateError, match="starting with '_'"):
        compile_template(template)


@pytest.mark.parametrize(
    "template",
    [
        "#include('/etc/passwd')",
        "#parse('/etc/passwd')",
        "#evaluate('$input.body')",
        "#return($input)",
    ],
)
def test_file_reads_and_dynamic_templates_are_refused_at_compile(template: str) -> None:
    with pytest.raises(TemplateError, match="not allowed"):
        compile_template(template)


@pytest.mark.parametrize(
    "template",
    [
        "#set($s = 'x')$s.format('{0}')",
        "#set($s = 'x')$s.encode()",
        "$context.getClass()",
        "$input.getClass()",
        "$util.qr('x')",
        "#set($l = [])$l.pop()",
        "#set($m = {})$m.clear()",
        "$input.body.join('a')",
    ],
)
def test_only_whitelisted_methods_can_be_called(template: str) -> None:
    assert "no method" in render_error(template, "{}")


def test_python_builtins_are_not_reachable_by_name() -> None:
    assert render("[$open][$eval][$globals][$input.body.upper]") == "[][][][]"
    with pytest.raises(TemplateError, match="starting with '_'"):
        compile_template("$__import__('os')")


def test_children_kept_only_as_bound_methods_are_guarded_too() -> None:
    # airspeed keeps a parenthesized expression's tree only as a bound method: it is guarded all the same.
    with pytest.raises(TemplateError, match="starting with '_'"):
        compile_template("#if($input.__class__)x#end")
    assert render("#if($input.path('$.nope'))yes#{else}no#end", "{}") == "no"


def test_foreach_over_a_huge_range_is_refused() -> None:
    assert "longer than 1000" in render_error("#foreach($i in [1..100000000])$i#end")


def test_foreach_over_a_long_list_stops_at_awss_1000_iterations() -> None:
    body = orjson.dumps({"items": list(range(1001))}).decode()
    assert "1000 iterations" in render_error("#foreach($i in $input.path('$.items'))#end", body)
    assert render("#foreach($i in $input.path('$.items'))#end.", orjson.dumps({"items": [1] * 1000}).decode()) == "."


def test_nested_loops_stop_within_the_time_and_step_bounds() -> None:
    template = "#foreach($i in [1..1000])#foreach($j in [1..1000])#foreach($k in [1..1000])x#end#end#end"
    started = time.monotonic()
    message = render_error(template)
    assert time.monotonic() - started < 2.0
    assert "ms" in message or "steps" in message or "output" in message


def test_string_doubling_is_refused_within_the_value_bound() -> None:
    started = time.monotonic()
    message = render_error("#set($s = 'ab')#foreach($i in [1..64])#set($s = \"$s$s\")#end$s.length()")
    assert time.monotonic() - started < 2.0
    assert "grew past" in message


def test_concatenation_doubling_and_repetition_are_refused() -> None:
    # the size cap is under test, not the clock: a generous time limit so a loaded machine cannot trip it first
    def size_error(template: str) -> str:
        with pytest.raises(TemplateError) as info:
            compile_template(template, Limits(seconds=10)).render()
        return str(info.value)

    assert "grew past" in size_error("#set($s = 'ab')#foreach($i in [1..64])#set($s = $s + $s)#end")
    assert "needs numbers" in size_error("#set($s = 'a' * 100000000)")
    assert "grew past" in size_error("#set($s = 'ab')#foreach($i in [1..64])#set($s = $s.concat($s))#end")
    assert "grew past" in size_error("#set($s = 'ab')#foreach($i in [1..64])#set($s = $s.replace('a', $s))#end")


def test_keeping_many_big_values_is_bounded_in_total() -> None:
    template = compile_template(
        "#set($s = 'x')#foreach($i in [1..19])#set($s = \"$s$s\")#end"  # 512 Ki characters
        "#set($l = [])#foreach($i in [1..1000])#set($ok = $l.add(\"$s$i\"))#end",
        Limits(seconds=10),
    )
    started = time.monotonic()
    with pytest.raises(TemplateError, match="in all"):
        template.render()
    assert time.monotonic() - started < 5.0


def test_output_is_bounded() -> None:
    template = compile_template("#foreach($i in [1..1000])$input.body#end", Limits(output_chars=10_000))
    with pytest.raises(TemplateError, match="output grew past"):
        template.render("x" * 100)


def test_recursive_macros_are_refused() -> None:
    assert "nested deeper" in render_error("#macro(f $n)#f($n)#end#f(1)")
    started = time.monotonic()
    message = render_error("#macro(f $n)#f($n)#f($n)#f($n)#end#f(1)")
    assert time.monotonic() - started < 2.0
    assert "nested deeper" in message or "ms" in message


def test_catastrophic_regular_expressions_are_refused() -> None:
    body = '{"s": "' + "a" * 64 + '"}'
    assert "regular expression refused" in render_error("$input.path('$.s').matches('(a+)+b')", body)
    assert "regular expression refused" in render_error("$input.path('$.s').replaceAll('(a|aa)*c', '')", body)
    assert render("$input.path('$.s').replaceAll('a+', 'b')", body) == "b"


def test_a_tight_time_limit_stops_a_long_loop() -> None:
    template = compile_template(
        "#foreach($i in [1..1000])#foreach($j in [1..1000])$i#end#end", Limits(seconds=0.01, output_chars=1 << 30)
    )
    with pytest.raises(TemplateError, match=r"ms|steps"):
        template.render()


def test_template_errors_never_carry_request_values() -> None:
    body = '{"secret": "S3CRET"}'
    for template in (
        "#set($s = $input.path('$.secret'))$s.nope()",
        "#set($n = $input.path('$.secret') / 0)",
        "#foreach($x in $input.path('$.secret'))#end",
        "$util.parseJson($input.path('$.secret'))",
    ):
        assert "S3CRET" not in render_error(template, body)


@pytest.mark.parametrize("text", ['{"ok": true}', "plain text, with a \\ backslash", "", "a\nb"])
def test_a_template_without_references_or_directives_renders_as_written(text: str) -> None:
    rendered = compile_template(text).render_result('{"x": 1}', {"connectionId": "c"})
    assert rendered.text == text and rendered.response_override == {"header": {}}


def test_what_a_template_reads_is_given_to_it_even_through_an_alias() -> None:
    aliased = compile_template("#set($i = $input)$i.params('room')/$stageVariables.env/$context.stage")
    assert aliased.render("", {"stage": "dev"}, {"env": "test"}, {"path": {"room": "lobby"}}) == "lobby/test/dev"
    assert compile_template("$input.body").reads == frozenset()
