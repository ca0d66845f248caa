"""Validation of written objects: the official OpenAPI schemas plus the apiserver's own checks.

Schemas come from the ``kubernetes-validate`` package (offline copies of the Kubernetes JSON
schemas, strict flavour: unknown fields are errors). One compiled validator per kind is cached,
so validating a pod costs well under a millisecond instead of rebuilding the schema each time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from ..errors import ApiError
from ..resources import ResourceType

JSON = dict[str, Any]
SCHEMA_VERSION = "1.33.0"
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# kinds whose names must be DNS-1123 labels rather than subdomains
_LABEL_NAMED = {"Namespace", "Service"}


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@functools.cache
def _validator(kind: str, api_version: str) -> Any:
    """A compiled JSON-schema validator for one kind, or None when no schema exists (CRDs)."""
    import jsonschema
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{SCHEMA_VERSION}-local-strict"
    try:
        schema = schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", SCHEMA_VERSION)
    except FileNotFoundError:
        return None
    definitions = schema_contents(f"{folder}/_definitions.json", SCHEMA_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def preload() -> None:
    """Import the schema machinery ahead of the first request (it takes a second or two)."""
    _validator("Pod", "v1")


def check_schema(rt: ResourceType, obj: JSON, field_validation: str) -> list[str]:
    """Validate against the OpenAPI schema; returns warnings for dropped unknown fields.

    ``field_validation`` is the request's ``fieldValidation``: Strict rejects unknown fields
    (400), Warn (the server default) drops them with a warning, Ignore drops them silently.
    Wrong types are 400 (the JSON cannot be decoded), missing required fields 422.
    """
    if rt.custom:
        return []
    validator = _validator(rt.kind, obj.get("apiVersion", rt.api_version()))
    if validator is None:
        return []
    warnings: list[str] = []
    unknown: list[tuple[list[Any], str]] = []
    required: list[tuple[str, str]] = []
    for error in validator.iter_errors(obj):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties":
            for name in re.findall(r"'([^']+)'", error.message.split("(", 1)[-1]):
                unknown.append((path, name))
        elif error.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", error.message)
            required.extend((_path([*path, m]), "Required value") for m in missing)
        else:
            field = _path(path)
            raise ApiError.bad_request(
                f'{rt.kind} in version "{obj.get("apiVersion")}" cannot be handled as a '
                f"{rt.kind}: json: cannot decode {field}: {error.message}"
            )
    if unknown:
        fields = [f'unknown field "{_path([*p, n])}"' for p, n in unknown]
        if field_validation == "Strict":
            raise ApiError.bad_request("strict decoding error: " + ", ".join(fields))
        for parent_path, name in unknown:
            parent: Any = obj
            for part in parent_path:
                parent = parent[part]
            parent.pop(name, None)
        if field_validation != "Ignore":
            warnings.extend(fields)
    if required:
        raise ApiError.invalid(rt, obj.get("metadata", {}).get("name", ""), required)
    return warnings


def check_semantics(rt: ResourceType, obj: JSON) -> None:
    """The apiserver's own checks that a schema cannot express (422 Invalid)."""
    meta = obj.get("metadata", {})
    name = meta.get("name", "")
    causes: list[tuple[str, str]] = []
    pattern = _DNS1123_LABEL if rt.kind in _LABEL_NAMED else _DNS1123_SUBDOMAIN
    limit = 63 if rt.kind in _LABEL_NAMED else 253
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif len(name) > limit or not pattern.match(name):
        kind = "RFC 1123 label" if rt.kind in _LABEL_NAMED else "RFC 1123 subdomain"
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase {kind} must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    for key, value in (meta.get("labels") or {}).items():
        causes.extend(_label_causes(key, str(value)))
    if rt.kind == "Pod":
        causes.extend(
            _pod_spec_causes(obj.get("spec") or {}, "spec", ("Always", "OnFailure", "Never"))
        )
    elif rt.kind == "Job":
        template = (obj.get("spec") or {}).get("template") or {}
        causes.extend(
            _pod_spec_causes(
                template.get("spec") or {}, "spec.template.spec", ("OnFailure", "Never")
            )
        )
    if causes:
        raise ApiError.invalid(rt, name, causes)


def _label_causes(key: str, value: str) -> list[tuple[str, str]]:
    causes = []
    prefix, _, label = key.rpartition("/")
    if (
        (prefix and not _DNS1123_SUBDOMAIN.match(prefix))
        or len(label) > 63
        or not _LABEL_NAME.match(label)
    ):
        causes.append(
            (
                "metadata.labels",
                f'Invalid value: "{key}": name part must consist of '
                "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        causes.append(
            (
                "metadata.labels",
                f'Invalid value: "{value}": a valid label must be an '
                "empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character",
            )
        )
    return causes


def _pod_spec_causes(spec: JSON, base: str, policies: tuple[str, ...]) -> list[tuple[str, str]]:
    from ....kube.quantity import parse_quantity

    causes: list[tuple[str, str]] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append((f"{base}.containers", "Required value"))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in policies:
        allowed = ", ".join(f'"{p}"' for p in policies)
        causes.append(
            (f"{base}.restartPolicy", f'Unsupported value: "{policy}": supported values: {allowed}')
        )
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            where = f"{base}.{group}[{i}]"
            cname = container.get("name", "")
            if not cname:
                causes.append((f"{where}.name", "Required value"))
            elif not _DNS1123_LABEL.match(cname):
                causes.append(
                    (
                        f"{where}.name",
                        f'Invalid value: "{cname}": a lowercase RFC 1123 label must consist '
                        "of lower case alphanumeric characters or '-'",
                    )
                )
            elif cname in seen:
                causes.append((f"{where}.name", f'Duplicate value: "{cname}"'))
            seen.add(cname)
            if not container.get("image"):
                causes.append((f"{where}.image", "Required value"))
            resources = container.get("resources") or {}
            limits = resources.get("limits") or {}
            for res, req in (resources.get("requests") or {}).items():
                try:
                    if res in limits and parse_quantity(req) > parse_quantity(limits[res]):
                        causes.append(
                            (
                                f"{where}.resources.requests",
                                f'Invalid value: "{req}": must be less than or equal to '
                                f"{res} limit of {limits[res]}",
                            )
                        )
                except ValueError:
                    causes.append(
                        (
                            f"{where}.resources.requests[{res}]",
                            f'Invalid value: "{req}": quantities must match the regular expression',
                        )
                    )
    return causes
