"""Read an API definition from disk: wsgw.yaml, a Serverless Framework service, or a SAM/CloudFormation template.

The kind is decided by content, not by file name: a template has `Resources` (and `AWSTemplateFormatVersion`
or `Transform`), a Serverless service has `service` and `functions`/`provider`; anything else is wsgw.yaml.
Each loader produces the same raw mapping `wsgw.config.parse_api` validates, plus what it could not honour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wsgw.errors import ConfigError, ConfigProblem
from wsgw.loaders.cfn_yaml import load_template
from wsgw.loaders.common import LoadOptions, Translation
from wsgw.loaders.sam import looks_like_template, translate_sam
from wsgw.loaders.serverless import looks_like_serverless, translate_serverless

Translator = Callable[[dict[str, Any], Path, LoadOptions], Translation]
DETECTORS: list[tuple[str, Callable[[Any], bool], Translator]] = [
    ("sam", looks_like_template, translate_sam),
    ("serverless", looks_like_serverless, translate_serverless),
]


class LoadFailed(ConfigError):
    """ConfigError from a translated file, carrying the warnings found alongside the errors."""

    def __init__(self, problems: list[ConfigProblem], warnings: list[ConfigProblem]) -> None:
        super().__init__(problems)
        self.warnings = warnings


@dataclass(slots=True)
class Loaded:
    """The raw wsgw.yaml mapping read from `path`, its kind, and the warnings about what was ignored."""

    raw: Any
    base_dir: Path
    kind: str
    warnings: list[ConfigProblem] = field(default_factory=list)


def read_document(path: str | Path) -> tuple[Any, Path]:
    """Parse YAML/JSON (CloudFormation short-form tags included); ConfigError names the file and line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.single(str(file), "file not found; pass -c PATH to a wsgw.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.single(str(file), f"cannot be read ({exc})") from None
    try:
        doc, unknown = load_template(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError.single(str(file), f"is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if unknown and not looks_like_template(doc):
        raise ConfigError([ConfigProblem(str(file), f"unknown tag {tag.tag} at line {tag.line}") for tag in unknown])
    return doc, file.resolve().parent


def load_document(path: str | Path, options: LoadOptions | None = None) -> Loaded:
    """Read and translate; raise ConfigError with every problem that stops serving."""
    options = options or LoadOptions()
    doc, base_dir = read_document(path)
    for kind, detect, translate in DETECTORS:
        if detect(doc):
            result = translate(doc, base_dir, options)
            if result.errors:
                raise LoadFailed(result.errors, result.warnings)
            return Loaded(result.raw, base_dir, kind, result.warnings)
    if options.stage and isinstance(doc, dict):
        doc = {**doc, "stage": options.stage}
    return Loaded(doc, base_dir, "wsgw")


__all__ = ["LoadFailed", "LoadOptions", "Loaded", "load_document", "read_document"]
