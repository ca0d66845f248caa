"""Custom resources against a CRD's ``openAPIV3Schema``: pruning, defaulting, validation.

What kube-apiserver's apiextensions does with a structural schema, in its order and words:

1. ``prune``: fields the schema does not declare are dropped, unless a node says
   ``x-kubernetes-preserve-unknown-fields: true`` (or has an ``additionalProperties`` schema);
   ``apiVersion``, ``kind`` and ``metadata`` at the root (and of an
   ``x-kubernetes-embedded-resource``) are always kept. The dropped paths are returned: the
   request's ``fieldValidation`` decides whether they are an error (Strict, which kubectl
   sends), a warning (Warn) or nothing (Ignore); nulls of fields that are neither nullable nor
   defaulted are dropped too;
2. ``apply_defaults``: ``default:`` values fill absent fields (and null ones that may not be
   null), then the defaults' own fields are defaulted; the real server does this on every
   write and on every read;
3. ``validate``: Kubernetes' OpenAPI dialect as k8s.io/kube-openapi checks it: ``type`` (a
   float with an integral value passes as an integer), ``nullable``,
   ``x-kubernetes-int-or-string`` (integer or string), ``required``, ``enum``, ``pattern``,
   ``minLength``/``maxLength``, ``minItems``/``maxItems``, ``minProperties``/``maxProperties``,
   ``minimum``/``maximum`` (and exclusive), ``multipleOf``, ``allOf``/``anyOf``/``oneOf``/``not``
   and the uniqueness of ``x-kubernetes-list-type`` ``set`` and ``map`` lists. Errors are field
   errors worded as apiextensions converts kube-openapi's (``spec.x: Invalid value:
   "integer": spec.x in body must be of type object: "integer"``).

Not done: ``x-kubernetes-validations`` (CEL rules) are skipped, as are ``format`` checks
(``date-time``, ``int32``...) and validation ratcheting of unchanged fields on update.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .api.field_errors import FieldError, go_value, not_supported, required
from .api.field_errors import duplicate as duplicate_error

JSON = dict[str, Any]
_ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _preserves(schema: JSON) -> bool:
    return schema.get("x-kubernetes-preserve-unknown-fields") is True


# -- pruning ----------------------------------------------------------------------------------
def prune(obj: JSON, schema: JSON) -> list[str]:
    """Drop undeclared fields of ``obj`` in place; the paths dropped (``spec.foo``)."""
    pruned: list[str] = []
    _prune(obj, schema, "", pruned, root=True)
    return pruned


def _prune(value: Any, schema: JSON, path: str, pruned: list[str], root: bool = False) -> None:
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _prune(item, items, f"{path}[{index}]", pruned)
        return
    if not isinstance(value, dict):
        return
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    keep_meta = root or schema.get("x-kubernetes-embedded-resource") is True
    for key in list(value):
        if keep_meta and key in _ROOT_FIELDS and key not in properties:
            continue
        if keep_meta and key == "metadata":
            continue  # ObjectMeta is decoded by its own rules, not the schema's
        sub = properties.get(key)
        if sub is None and isinstance(extra, dict):
            sub = extra
        if sub is not None:
            if value[key] is None and not sub.get("nullable") and "default" not in sub:
                del value[key]  # a null that may not be null and has no default is dropped
                continue
            _prune(value[key], sub, _child(path, key), pruned)
        elif not (_preserves(schema) or extra is True):
            del value[key]
            pruned.append(_child(path, key))


# -- defaulting -------------------------------------------------------------------------------
def apply_defaults(value: Any, schema: JSON) -> None:
    """Fill ``default:`` values into ``value`` in place (absent fields, disallowed nulls)."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            if "default" not in sub:
                continue
            if key not in value or (value[key] is None and not sub.get("nullable")):
                value[key] = json.loads(json.dumps(sub["default"]))
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key)
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is not None:
                apply_defaults(item, sub)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_defaults(item, items)


# -- validation -------------------------------------------------------------------------------
def validate(obj: Any, schema: JSON) -> list[FieldError]:
    """Every schema error of ``obj`` (empty when valid), as the API server words them."""
    errors: list[FieldError] = []
    _validate(obj, schema, "", errors)
    return errors


def json_type(value: Any) -> str:
    """The OpenAPI type name of a decoded JSON value (``integer``, ``object``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _types(schema: JSON) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) and kind else []


def _type_ok(actual: str, value: Any, types: list[str]) -> bool:
    if actual in types:
        return True
    if actual == "number" and "integer" in types and float(value).is_integer():
        return True
    return actual == "integer" and "number" in types


def _invalid(path: str, value: Any, message: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {go_value(value)}: {message}")


def _number(value: float) -> str:
    """A bound as Go's ``%v`` prints it (``0``, ``0.5``)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _validate(value: Any, schema: JSON, path: str, errors: list[FieldError]) -> None:
    types = _types(schema)
    actual = json_type(value)
    if value is None:
        if types and not schema.get("nullable"):
            errors.append(_type_error(path, types, "null"))
        return
    if types and not _type_ok(actual, value, types):
        errors.append(_type_error(path, types, actual))
        return
    _combinators(value, schema, path, errors)
    if isinstance(value, str):
        _string(value, schema, path, errors)
    elif actual in ("integer", "number"):
        _numeric(value, schema, path, errors)
    elif isinstance(value, list):
        _array(value, schema, path, errors)
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        allowed = [a if isinstance(a, str) else json.dumps(a) for a in enum]
        errors.append(not_supported(path, value, allowed))
    if isinstance(value, dict):
        _object(value, schema, path, errors)


def _type_error(path: str, types: list[str], actual: str) -> FieldError:
    message = f'{path} in body must be of type {",".join(types)}: "{actual}"'
    return FieldError(
        path, "FieldValueTypeInvalid", f"Invalid value: {go_value(actual)}: {message}"
    )


def _combinators(value: Any, schema: JSON, path: str, errors: list[FieldError]) -> None:
    """allOf, anyOf, oneOf and not (value validations only, in a structural schema)."""
    name = json.dumps(path)
    for sub in schema.get("allOf") or []:
        _validate(value, sub, path, errors)
    alternatives = schema.get("anyOf")
    if alternatives and not any(not _errors_of(value, s, path) for s in alternatives):
        errors.append(_invalid(path, "", f"{name} must validate at least one schema (anyOf)"))
    choices = schema.get("oneOf")
    if choices:
        passing = sum(1 for s in choices if not _errors_of(value, s, path))
        if passing != 1:
            errors.append(
                _invalid(path, "", f"{name} must validate one and only one schema (oneOf)")
            )
    negated = schema.get("not")
    if isinstance(negated, dict) and not _errors_of(value, negated, path):
        errors.append(_invalid(path, "", f"{name} must not validate the schema (not)"))


def _errors_of(value: Any, schema: JSON, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    _validate(value, schema, path, found)
    return found


def _string(value: str, schema: JSON, path: str, errors: list[FieldError]) -> None:
    longest = schema.get("maxLength")
    if isinstance(longest, int) and len(value) > longest:
        unit = "byte" if longest == 1 else "bytes"
        errors.append(
            FieldError(
                path, "FieldValueTooLong", f"Too long: may not be more than {longest} {unit}"
            )
        )
    shortest = schema.get("minLength")
    if isinstance(shortest, int) and len(value) < shortest:
        errors.append(
            _invalid(path, value, f"{path} in body should be at least {shortest} chars long")
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not _matches(pattern, value):
        errors.append(_invalid(path, value, f"{path} in body should match '{pattern}'"))


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True  # an ECMA pattern Python cannot compile: not judged


def _numeric(value: float, schema: JSON, path: str, errors: list[FieldError]) -> None:
    top = schema.get("maximum")
    if isinstance(top, int | float):
        exclusive = bool(schema.get("exclusiveMaximum"))
        if value > top or (exclusive and value == top):
            relation = "less than" if exclusive else "less than or equal to"
            errors.append(
                _invalid(path, value, f"{path} in body should be {relation} {_number(top)}")
            )
    bottom = schema.get("minimum")
    if isinstance(bottom, int | float):
        exclusive = bool(schema.get("exclusiveMinimum"))
        if value < bottom or (exclusive and value == bottom):
            relation = "greater than" if exclusive else "greater than or equal to"
            errors.append(
                _invalid(path, value, f"{path} in body should be {relation} {_number(bottom)}")
            )
    factor = schema.get("multipleOf")
    if isinstance(factor, int | float) and factor > 0 and not float(value / factor).is_integer():
        errors.append(
            _invalid(path, value, f"{path} in body should be a multiple of {_number(factor)}")
        )


def _array(value: list[Any], schema: JSON, path: str, errors: list[FieldError]) -> None:
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", errors)
    fewest = schema.get("minItems")
    if isinstance(fewest, int) and len(value) < fewest:
        errors.append(
            _invalid(path, len(value), f"{path} in body should have at least {fewest} items")
        )
    most = schema.get("maxItems")
    if isinstance(most, int) and len(value) > most:
        errors.append(
            FieldError(
                path, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {most} items"
            )
        )
    errors.extend(_list_type_errors(value, schema, path))


def _list_type_errors(value: list[Any], schema: JSON, path: str) -> list[FieldError]:
    """``x-kubernetes-list-type``: ``set`` items and ``map`` keys must be unique."""
    list_type = schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys") or []
    seen: list[Any] = []
    found: list[FieldError] = []
    for index, item in enumerate(value):
        if list_type == "set":
            identity: Any = item
        elif list_type == "map" and isinstance(item, dict):
            identity = {k: item.get(k) for k in keys if k in item}
        else:
            continue
        if identity in seen:
            where = f"{path}[{index}]"
            if isinstance(identity, dict):
                found.append(
                    FieldError(
                        where, "FieldValueDuplicate", f"Duplicate value: {_go_map(identity)}"
                    )
                )
            else:
                found.append(duplicate_error(where, identity))
        else:
            seen.append(identity)
    return found


def _go_map(keys: JSON) -> str:
    inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(keys.items()))
    return f"map[string]interface {{}}{{{inner}}}"


def _object(value: JSON, schema: JSON, path: str, errors: list[FieldError]) -> None:
    count = len(value)
    most = schema.get("maxProperties")
    if isinstance(most, int) and count > most:
        errors.append(
            FieldError(
                path, "FieldValueTooMany", f"Too many: {count}: must have at most {most} items"
            )
        )
        return
    fewest = schema.get("minProperties")
    if isinstance(fewest, int) and count < fewest:
        errors.append(
            _invalid(path, "", f"{path} in body should have at least {fewest} properties")
        )
        return
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        sub = properties.get(key)
        if sub is None and isinstance(extra, dict):
            sub = extra
        if sub is not None and not (path == "" and key == "metadata"):
            _validate(item, sub, _child(path, key), errors)
    for key in schema.get("required") or []:
        if key not in value:
            errors.append(required(_child(path, key)))
