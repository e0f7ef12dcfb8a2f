"""Cache settings in serverless.yml and SAM templates: a REST API (v1) stage's cache cannot apply (such APIs are
not served from templates), so each setting is reported by its key with its wsgw.yaml equivalent, never dropped
in silence; a WebSocket route's `caching:` written in wsgw.yaml is served."""

from __future__ import annotations

from pathlib import Path

from wsgw.loaders import load_document
from wsgw.loaders.sam import rest_stage_caching

TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Ws:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Ws, RouteKey: $default, Target: !Sub "integrations/${Integ}"}
  Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Ws
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations
  Fn:
    Type: AWS::Serverless::Function
    Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src/}
  Rest:
    Type: AWS::Serverless::Api
    Properties:
      StageName: prod
      CacheClusterEnabled: true
      CacheClusterSize: '0.5'
      MethodSettings:
        - {ResourcePath: '/*', HttpMethod: '*', CachingEnabled: true, CacheTtlInSeconds: 60}
        - {ResourcePath: '/~1pets~1{id}', HttpMethod: GET, CachingEnabled: false, CacheDataEncrypted: true}
  RestStage:
    Type: AWS::ApiGateway::Stage
    Properties: {RestApiId: x, StageName: s, CacheClusterEnabled: false}
"""


def test_rest_stage_cache_settings_are_each_reported_with_their_wsgw_equivalent(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    warnings = {w.key: w.message for w in load_document(template).warnings}
    base = "Resources.Rest.Properties"
    assert "caching.cacheClusterEnabled: true" in warnings[f"{base}.CacheClusterEnabled"]
    assert "caching.maxBytes: 536870912" in warnings[f"{base}.CacheClusterSize"]
    assert "caching.cacheTtlInSeconds: 60" in warnings[f"{base}.MethodSettings[0].CacheTtlInSeconds"]
    assert 'http.routes["GET /pets/{id}"].caching.cachingEnabled: false' in warnings[
        f"{base}.MethodSettings[1].CachingEnabled"]
    assert "unencrypted" in warnings[f"{base}.MethodSettings[1].CacheDataEncrypted"]
    assert "caching.cacheClusterEnabled: false" in warnings["Resources.RestStage.Properties.CacheClusterEnabled"]
    assert all("not served" in warnings[k] for k in warnings if ".Cache" in k or "MethodSettings" in k)


def test_a_deployments_stage_description_and_odd_sizes_are_reported_too() -> None:
    notes = dict(rest_stage_caching({"CacheClusterSize": "3", "MethodSettings": ["junk", {"CachingEnabled": True}]},
                                    "Resources.D.Properties.StageDescription"))
    assert "AWS's sizes are 0.5, 1.6" in notes["Resources.D.Properties.StageDescription.CacheClusterSize"]
    assert "caching.cachingEnabled: true" in notes["Resources.D.Properties.StageDescription.MethodSettings[1]"
                                                   ".CachingEnabled"]
    assert rest_stage_caching({"StageName": "x"}, "k") == []


def test_the_serverless_caching_plugin_is_reported_with_what_to_do_instead(tmp_path: Path) -> None:
    service = tmp_path / "serverless.yml"
    service.write_text("""
service: cached
provider: {name: aws, runtime: python3.12}
plugins: [serverless-api-gateway-caching]
custom:
  apiGatewayCaching: {enabled: true}
functions:
  hello:
    handler: app.handler
    events: [{websocket: $default}]
""")
    warnings = {w.key: w.message for w in load_document(service).warnings}
    assert "REST API (v1) http events" in warnings["plugins.serverless-api-gateway-caching"]
    assert "caching: in wsgw.yaml" in warnings["plugins.serverless-api-gateway-caching"]
