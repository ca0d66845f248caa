"""Turning validation failures into ``path: what was expected`` lines for administrators.

Pydantic reports a location tuple and a generic message. Administrators edit YAML, so the path
is written the way they navigate it (``accelerators[2].resource``, ``projects.cms.limits``,
``nodeSelector["nvidia.com/gpu.product"]``: keys as written, camelCase) and the message says
what was expected and what was found, in YAML terms (``true``, quoted strings).

Checks spanning several keys (unique names, references between sections) run in model
validators; they collect their problems in an :class:`Issues` so that each one is still
reported at the key it concerns, not at the model that found it.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from .values import shown

Loc = tuple[int | str, ...]

# the error type under which Issues travel through pydantic
ISSUES_ERROR = "platform_config_issues"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][-A-Za-z0-9_]*")
_KEY_MARKER = "[key]"  # pydantic's marker for an error in a mapping key rather than its value
# what was expected, by pydantic error type, in YAML words
_EXPECTED = {
    "string_type": "a string",
    "string_too_short": "a non-empty string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
}
_BOUNDS = {
    "greater_than": "greater than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
}


class PlatformConfigError(Exception):
    """The configuration cannot be used; ``lines`` are ``path: what was expected`` messages.

    ``source`` names where the configuration came from (a file path), empty for text.
    """

    def __init__(self, lines: list[str], source: str = "") -> None:
        self.lines = list(lines)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}invalid platform configuration:\n  " + "\n  ".join(self.lines))


class Issues:
    """Problems found by a model validator, each at its path below the validated model."""

    def __init__(self) -> None:
        self._found: list[tuple[Loc, str]] = []

    def add(self, loc: Loc, message: str) -> None:
        self._found.append((loc, message))

    def raise_if_any(self) -> None:
        """Raise them as one pydantic error that :func:`format_errors` expands again."""
        if self._found:
            summary = "; ".join(f"{format_loc(loc)}: {message}" for loc, message in self._found)
            raise PydanticCustomError(
                ISSUES_ERROR, "{summary}", {"summary": summary, "issues": tuple(self._found)}
            )


def format_loc(loc: Iterable[int | str]) -> str:
    """A location as administrators navigate the YAML.

    ``("projects", "cms", "limits", "accelerators", 0)`` -> ``projects.cms.limits.accelerators[0]``;
    keys with dots or slashes (label keys) are bracketed: ``nodeSelector["nvidia.com/gpu"]``.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def format_errors(exc: ValidationError, root: type[BaseModel] | None = None) -> list[str]:
    """One ``path: message`` line per problem in ``exc``.

    ``root`` is the model that was validated; with it, unknown keys get the list of keys allowed
    at that place (and a suggestion for near misses such as ``node_selector``) and missing keys
    the description of what belongs there.
    """
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == ISSUES_ERROR:
            for sub, message in error.get("ctx", {}).get("issues", ()):
                lines.append(_line(loc + tuple(sub), message))
        elif _KEY_MARKER in loc:
            key_loc = loc[: loc.index(_KEY_MARKER)]
            lines.append(_line(key_loc, "invalid key: " + _describe(error, root, loc)))
        else:
            lines.append(_line(loc, _describe(error, root, loc)))
    return lines


def _line(loc: Loc, message: str) -> str:
    path = format_loc(loc)
    return f"{path}: {message}" if path else message


def _describe(error: ErrorDetails, root: type[BaseModel] | None, loc: Loc) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    got = f"(got {shown(error['input'])})"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        return _unknown_key(root, loc)
    if kind == "missing":
        description = _field_description(root, loc)
        return "missing required key" + (f" ({description})" if description else "")
    if kind == "literal_error":
        choices = str(ctx["expected"]).replace("'", '"')
        return f"expected {choices} {got}"
    if kind == "string_type" and isinstance(error["input"], bool | int | float):
        # YAML turns unquoted true, 1 or 1.0 into booleans and numbers
        return f'expected a string {got}; quote it in YAML, e.g. "true" or "1.0"'
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]} {got}"
    if kind == "too_short":
        least = ctx["min_length"]
        return f"expected at least {least} item{'' if least == 1 else 's'} {got}"
    if kind in _BOUNDS:
        bounds = {name: f"{value:g}" for name, value in ctx.items()}
        return f"expected a number {_BOUNDS[kind].format(**bounds)} {got}"
    return f"{error['msg']} {got}"


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` to reach the type that holds the keys."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _fields_by_key(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The model's fields under the keys written in YAML (their aliases)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _model_at(root: type[BaseModel] | None, loc: Loc) -> type[BaseModel] | None:
    """The model class whose keys sit at ``loc`` (``("accelerators", 0)`` -> Accelerator)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if _is_model(current):
            field = _fields_by_key(current).get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    return current if _is_model(current) else None


def _field_description(root: type[BaseModel] | None, loc: Loc) -> str:
    model = _model_at(root, loc[:-1])
    field = _fields_by_key(model).get(str(loc[-1])) if model is not None else None
    return (field.description or "") if field is not None else ""


def _unknown_key(root: type[BaseModel] | None, loc: Loc) -> str:
    model = _model_at(root, loc[:-1])
    if model is None:
        return "unknown key"
    allowed = list(_fields_by_key(model))
    written = str(loc[-1])
    # snake_case and case slips (node_selector, memoryGib) match exactly once normalized
    normalized = {key.lower(): key for key in allowed}
    squashed = written.replace("_", "").lower()
    guesses = (
        [normalized[squashed]]
        if squashed in normalized
        else difflib.get_close_matches(written, allowed, n=1, cutoff=0.75)
    )
    maybe = f'; did you mean "{guesses[0]}"?' if guesses else ""
    return f"unknown key{maybe} (allowed here: {', '.join(allowed)})"
