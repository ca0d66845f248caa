"""Field errors and the 422 ``Invalid`` status built from them, worded like apimachinery's.

``FieldError`` mirrors ``field.Error``: the path, the reason the ``Status`` causes carry
(``FieldValueRequired``...) and the body (``Required value``, ``Invalid value: "x": ...``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..resources import ResourceType


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, e.g. ``spec.containers[0].image: Required value``."""

    field: str
    reason: str
    body: str

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def go_value(value: Any) -> str:
    """A value as Go's ``%#v``/``%q`` prints it in messages (strings quoted, numbers bare)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value) if isinstance(value, str) else json.dumps(value, sort_keys=True)


def required(field: str, detail: str = "") -> FieldError:
    """A missing field (``FieldValueRequired``)."""
    return FieldError(
        field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else "")
    )


def invalid(field: str, value: Any, detail: str) -> FieldError:
    """A field with a bad value (``FieldValueInvalid``)."""
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {go_value(value)}: {detail}")


def not_supported(field: str, value: Any, allowed: list[str]) -> FieldError:
    """A value outside an enumeration (``FieldValueNotSupported``)."""
    values = ", ".join(json.dumps(a) for a in allowed)
    return FieldError(
        field,
        "FieldValueNotSupported",
        f"Unsupported value: {go_value(value)}: supported values: {values}",
    )


def duplicate(field: str, value: Any) -> FieldError:
    """A value that must be unique, seen twice (``FieldValueDuplicate``)."""
    return FieldError(field, "FieldValueDuplicate", f"Duplicate value: {go_value(value)}")


def forbidden(field: str, detail: str) -> FieldError:
    """A change or value the API refuses (``FieldValueForbidden``)."""
    return FieldError(field, "FieldValueForbidden", f"Forbidden: {detail}")


def not_found(field: str, value: Any) -> FieldError:
    """A reference to something that does not exist (``FieldValueNotFound``)."""
    return FieldError(field, "FieldValueNotFound", f"Not found: {go_value(value)}")


def qualified_kind(rt: ResourceType) -> str:
    """``Pod`` or ``Job.batch``: how ``NewInvalid`` names the kind."""
    return f"{rt.kind}.{rt.group}" if rt.group else rt.kind


def invalid_status(rt: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid: one error is quoted as is, several are listed in brackets."""
    listed = ", ".join(str(e) for e in errors)
    text = listed if len(errors) == 1 else f"[{listed}]"
    details: dict[str, Any] = {"name": name, "kind": rt.kind}
    if rt.group:
        details["group"] = rt.group
    details["causes"] = [{"reason": e.reason, "message": e.body, "field": e.field} for e in errors]
    return ApiError(
        422, "Invalid", f'{qualified_kind(rt)} "{name}" is invalid: {text}', details=details
    )
