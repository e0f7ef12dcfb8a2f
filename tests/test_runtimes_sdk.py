"""Node.js handlers with the AWS SDK for JavaScript v3 from wsgw's runtime folder, reaching the gateway through
AWS's own host name for the API (`{apiId}.execute-api.{region}.amazonaws.com`) while every other name resolves
as before. Real `node` processes, the SDK as `make node-runtime` installs it, and a local TLS server standing in
for the gateway's @connections."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.runtimes_fixtures import (
    API_HOST,
    NODE_RUNTIME_DIR,
    ConnectionsStandIn,
    MakeFunction,
    api_certs,
    connections_stand_in,
    make_function,
    require_node_sdk,
    runtime_api,
)
from wsgw.runtimes.invocation import InitError

__all__ = ["api_certs", "connections_stand_in", "make_function", "runtime_api"]

ALIAS_MODULE = (NODE_RUNTIME_DIR / "endpoint-alias.mjs").as_uri()

# The shape of AWS's chat sample (simple-websockets-chat-app, sendmessage/app.js, SDK v3): the endpoint is
# built from the event, and a 410 from @connections means the connection is gone.
ESM_SENDER = {"app.mjs": f"""
    import {{ ApiGatewayManagementApiClient, PostToConnectionCommand }} from '@aws-sdk/client-apigatewaymanagementapi';
    import {{ aliasFor }} from '{ALIAS_MODULE}';

    export const handler = async (event) => {{
      const {{ domainName, stage }} = event.requestContext;
      if (!aliasFor(domainName)) throw new Error('no alias for ' + domainName);   // never leave this machine
      const client = new ApiGatewayManagementApiClient({{ apiVersion: '2018-11-29',
                                                         endpoint: 'https://' + domainName + '/' + stage }});
      const outcome = {{}};
      for (const id of event.to) {{
        try {{
          await client.send(new PostToConnectionCommand({{ ConnectionId: id, Data: event.body }}));
          outcome[id] = 'sent';
        }} catch (err) {{
          outcome[id] = err.$metadata?.httpStatusCode === 410 ? 'stale:' + err.name : 'error:' + err.message;
        }}
      }}
      return {{ outcome, pid: process.pid }};
    }};
"""}


def chat_event(to: list[str], body: str) -> dict[str, Any]:
    return {"requestContext": {"domainName": API_HOST, "stage": "dev", "routeKey": "sendmessage"},
            "to": to, "body": body}


async def test_esm_handler_imports_the_sdk_and_posts_through_the_execute_api_host(
        make_function: MakeFunction, connections_stand_in: ConnectionsStandIn) -> None:
    require_node_sdk()
    fn = await make_function(ESM_SENDER, name="sendmessage", timeout_s=10.0,
                             **connections_stand_in.reach)
    connections_stand_in.gone.add("gone0000000=")
    result = await fn.invoke(chat_event(["L0SM9cOFvHcCIhw=", "gone0000000="], "hi all"))
    assert result["outcome"] == {"L0SM9cOFvHcCIhw=": "sent", "gone0000000=": "stale:GoneException"}
    first, second = connections_stand_in.posted
    assert (first.method, first.stage, first.connection_id, first.body) == ("POST", "dev", "L0SM9cOFvHcCIhw=",
                                                                            b"hi all")
    assert first.host == API_HOST                             # the SDK asked for 443; the alias sent it here
    assert first.server_name == API_HOST                      # SNI: TLS checked the certificate against the name
    assert "Credential=wsgw-local/" in first.authorization
    assert "/us-east-1/execute-api/aws4_request" in first.authorization
    assert second.connection_id == "gone0000000="
    again = await fn.invoke(chat_event(["L0SM9cOFvHcCIhw="], "warm"))
    assert again["pid"] == result["pid"] and len(fn.cold_starts) == 1
    assert connections_stand_in.posted[-1].body == b"warm"


async def test_commonjs_handler_requires_the_sdk_and_dynamodb_document_client(
        make_function: MakeFunction, connections_stand_in: ConnectionsStandIn) -> None:
    require_node_sdk()
    fn = await make_function({"app.js": """
        const { ApiGatewayManagementApiClient, PostToConnectionCommand } =
          require('@aws-sdk/client-apigatewaymanagementapi');
        const { DynamoDBClient } = require('@aws-sdk/client-dynamodb');
        const { DynamoDBDocumentClient } = require('@aws-sdk/lib-dynamodb');
        const { marshall } = require('@aws-sdk/util-dynamodb');

        exports.handler = function (event, context, callback) {
          const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
          const client = new ApiGatewayManagementApiClient({ endpoint: event.endpoint });
          client.send(new PostToConnectionCommand({ ConnectionId: 'cjs', Data: 'from require' }))
            .then(() => callback(null, { marshalled: marshall({ id: 'a', n: 1 }), doc: typeof doc.send }))
            .catch(callback);
        };
    """}, timeout_s=10.0, **connections_stand_in.reach)
    result = await fn.invoke({"endpoint": f"https://{API_HOST}/prod"})
    assert result == {"marshalled": {"id": {"S": "a"}, "n": {"N": "1"}}, "doc": "function"}
    [posted] = connections_stand_in.posted
    assert (posted.stage, posted.connection_id, posted.body) == ("prod", "cjs", b"from require")


async def test_the_handlers_own_node_modules_win_over_wsgws_sdk(make_function: MakeFunction) -> None:
    require_node_sdk()
    own = {"name": "@aws-sdk/client-dynamodb", "version": "0.0.1", "main": "index.js"}
    fn = await make_function({
        "node_modules/@aws-sdk/client-dynamodb/package.json": json.dumps(own),
        "node_modules/@aws-sdk/client-dynamodb/index.js": "exports.whose = 'the function\\'s own';",
        "app.mjs": """
            import { whose } from '@aws-sdk/client-dynamodb';
            import { createRequire } from 'node:module';
            const required = createRequire(import.meta.url)('@aws-sdk/client-dynamodb').whose;
            export const handler = async () => ({ imported: whose, required });
        """})
    assert await fn.invoke({}) == {"imported": "the function's own", "required": "the function's own"}


async def test_a_package_nobody_has_is_still_an_import_error(make_function: MakeFunction) -> None:
    require_node_sdk()
    fn = await make_function({"app.mjs": "import 'no-such-package-wsgw'; export const handler = async () => 1;"})
    with pytest.raises(InitError) as caught:
        await fn.invoke({})
    assert caught.value.error_type == "Runtime.ImportModuleError"
    assert "no-such-package-wsgw" in caught.value.error_message


async def test_only_the_api_host_is_redirected_in_node(make_function: MakeFunction,
                                                      connections_stand_in: ConnectionsStandIn) -> None:
    require_node_sdk()
    fn = await make_function({"app.mjs": f"""
        import dns from 'node:dns';
        import {{ lookup }} from 'node:dns/promises';
        import {{ aliasFor }} from '{ALIAS_MODULE}';

        const addresses = async (name) => (await lookup(name, {{ all: true }})).map((a) => a.address).sort();
        export const handler = async (event) => {{
          if (!aliasFor(event.host)) throw new Error('no alias');
          const viaCallback = await new Promise((ok, fail) => dns.lookup(event.host.toUpperCase() + '.',
            (err, address, family) => err ? fail(err) : ok([address, family])));
          const fetched = await fetch(`https://${{event.host}}/dev/@connections/by-fetch`,
                                      {{ method: 'POST', body: 'f' }});
          const other = await fetch(`https://localhost:${{event.port}}/dev/@connections/by-localhost`,
                                    {{ method: 'POST', body: 'l' }});
          return {{
            alias: await addresses(event.host), viaCallback,
            localhost: await addresses('localhost'), literal: await addresses('127.0.0.2'),
            nearMisses: event.nearMisses.map((name) => aliasFor(name) ?? null),
            fetched: fetched.status, other: other.status,
          }};
        }};
    """}, timeout_s=10.0, **connections_stand_in.reach)
    near_misses = ["amazonaws.com", "execute-api.us-east-1.amazonaws.com",
                   "other1d0.execute-api.us-east-1.amazonaws.com",
                   API_HOST.replace("us-east-1", "eu-west-1"), API_HOST + ".example.com", "x" + API_HOST, "localhost"]
    result = await fn.invoke({"host": API_HOST, "port": connections_stand_in.port, "nearMisses": near_misses})
    assert result["alias"] == ["127.0.0.1"]
    assert result["viaCallback"] == ["127.0.0.1", 4]
    assert set(result["localhost"]) <= {"127.0.0.1", "::1"} and result["localhost"]
    assert result["literal"] == ["127.0.0.2"]
    assert result["nearMisses"] == [None] * len(near_misses)
    assert (result["fetched"], result["other"]) == (200, 200)       # fetch (undici) goes through the same hook
    by_fetch, by_localhost = connections_stand_in.posted
    assert (by_fetch.connection_id, by_fetch.server_name, by_fetch.host) == ("by-fetch", API_HOST, API_HOST)
    assert by_localhost.connection_id == "by-localhost"
    assert by_localhost.host == f"localhost:{connections_stand_in.port}"
