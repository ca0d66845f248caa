"""Reading the platform configuration from YAML, with errors administrators can act on.

PyYAML silently keeps the last of two equal keys, which in a configuration hides mistakes (two
``limits:`` under one project: the first is ignored). Here duplicate keys are errors, reported
with their line and column like syntax errors.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import PlatformConfigError, format_errors
from .models import PlatformConfig
from .values import shown

# text that cannot be a file name: several lines, a "key: value", or YAML flow/list/comment
_YAML_TEXT = re.compile(r"\n|:(\s|$)|^\s*([{\[#-]|$)")
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping repeats a key."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` rejecting duplicate keys (keys merged with ``<<`` may be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Hashable, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # SafeLoader reports unhashable keys itself
            if key in seen:
                raise _DuplicateKeyError(
                    None,
                    None,
                    f"duplicate key {shown(key)} (first written at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, _DuplicateKeyError):
        return where + problem
    context = getattr(exc, "context", None)
    return f"{where}not valid YAML: {problem}" + (f" ({context})" if context else "")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = "no such file (expected the path of a platform configuration YAML file)"
    except IsADirectoryError:
        problem = "is a directory (expected a platform configuration YAML file)"
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start} cannot be decoded)"
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror or exc}"
    raise PlatformConfigError([problem], str(path))


def load_platform_config(source: str | Path) -> PlatformConfig:
    """Load and validate the configuration from a file or from YAML text.

    ``source`` is a file when it is a :class:`~pathlib.Path` or a one-line string that is not
    YAML mapping, list or flow syntax (``"examples/platform.yaml"``); otherwise it is the YAML
    text itself. Raises :class:`PlatformConfigError` whose ``lines`` say what is wrong, and
    where: the file, the line and column of YAML errors, the key path of invalid values.
    """
    label = ""
    if isinstance(source, Path) or not _YAML_TEXT.search(source):
        label = str(source)
        text = _read(Path(source))
    else:
        text = source
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise PlatformConfigError([_yaml_error(exc)], label) from exc
    return validate_platform_config(data, label)


def validate_platform_config(data: object, source: str = "") -> PlatformConfig:
    """Validate already-parsed data (e.g. a document taken from rendered Helm values).

    Keys must be camelCase as in the YAML; snake_case is for Python code building the model
    directly. ``source`` names the origin in the error message.
    """
    if data is None:
        raise PlatformConfigError(
            [
                "the document is empty: expected a mapping with the keys accelerators, "
                "images, resources and projects"
            ],
            source,
        )
    if not isinstance(data, dict):
        raise PlatformConfigError(
            [
                f"expected a mapping with the keys accelerators, images, resources and projects "
                f"at the top level (got {shown(data)})"
            ],
            source,
        )
    try:
        return PlatformConfig.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise PlatformConfigError(format_errors(exc, PlatformConfig), source) from exc
