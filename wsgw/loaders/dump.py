"""Print a translated API as wsgw.yaml, keys in the order a person reads them."""

from __future__ import annotations

from typing import Any

import yaml

ORDER = ("routeSelectionExpression", "stage", "region", "apiId", "accountId", "stageVariables", "environment",
         "tls", "authorizers", "routes", "http", "limits", "throttling", "isBase64Encoded")


class _PlainDumper(yaml.SafeDumper):
    """No &anchors/*aliases: two routes sharing one function print the function twice, as a person writes it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def as_wsgw_yaml(raw: Any, kind: str, source: str) -> str:
    if isinstance(raw, dict):
        ordered = {key: raw[key] for key in ORDER if key in raw}
        ordered.update({key: value for key, value in raw.items() if key not in ordered})
        raw = ordered
    header = f"# wsgw.yaml translated from {source} ({kind}); paths are relative to that file's folder\n"
    if kind == "wsgw":
        header = ""
    return header + yaml.dump(raw, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False,
                              allow_unicode=True, width=120)
