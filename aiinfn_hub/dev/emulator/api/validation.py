"""Validation of written objects, in the order and words of kube-apiserver.

1. ``decode``: what fails while the body is decoded into Go types: wrong JSON types, bad
   quantities and base64 (400 BadRequest), unknown fields (400 under ``fieldValidation=Strict``,
   dropped with a warning under ``Warn``, the default, or silently under ``Ignore``).
2. defaulting (``admission``), then
3. ``validate_create`` / ``validate_update``: the official schema's required fields and enums,
   plus the checks the API server's Go validation makes that no schema expresses: DNS names,
   label syntax, unique container names, restart policies, requests within limits, immutable
   fields (422 Invalid).

The schema is the official OpenAPI one (``openapi_schema``). A custom resource whose CRD is
established is pruned, defaulted and checked against the CRD's ``openAPIV3Schema``
(``structural``); a built-in custom kind with no CRD (Kueue's, see ``kinds``) is stored as given.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ....kubemodel.quantity import parse_quantity
from .. import structural
from ..crds import definition_errors
from ..errors import ApiError
from ..resources import CRDS, ResourceType
from . import field_errors as fe
from .field_errors import FieldError, invalid_status
from .name_syntax import (
    dns1123_label_errors,
    label_value_errors,
    object_name_errors,
    qualified_name_errors,
)
from .openapi_schema import SchemaProblem, field_path, go_type_name, json_type_name, library

JSON = dict[str, Any]

_POD_RESTART_POLICIES = ["Always", "OnFailure", "Never"]
_JOB_RESTART_POLICIES = ["OnFailure", "Never"]
_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")
_POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)"
)
# pod template fields a suspended, never started Job may change (Kueue sets them on admission)
_JOB_SCHEDULING_DIRECTIVES = ("nodeSelector", "tolerations", "affinity", "schedulingGates")


# -- decoding ---------------------------------------------------------------------------------
@dataclass
class Decoded:
    """What decoding found: warnings to send, problems to judge once defaults are applied."""

    warnings: list[str] = field(default_factory=list)
    deferred: list[SchemaProblem] = field(default_factory=list)
    # a custom resource's CRD schema, checked once defaults are applied
    custom_schema: JSON | None = None


def decode(
    rt: ResourceType, obj: JSON, field_validation: str | None, schema: JSON | None = None
) -> Decoded:
    """Schema checks made while decoding (see the module docstring); drops unknown fields.

    ``field_validation`` is the request's ``fieldValidation`` (Strict, Warn or Ignore;
    unset means Warn, the server default). ``schema`` is a custom resource's CRD schema.
    """
    result = Decoded()
    if rt.custom:
        if schema is not None:
            _decode_custom(rt, obj, field_validation, schema, result)
        return result
    api_version = obj.get("apiVersion") or rt.api_version()
    problems = library().problems(rt.kind, api_version, obj)
    if problems is None:
        return result
    cannot_handle = (
        f'{rt.kind} in version "{api_version.split("/")[-1]}" cannot be handled as a {rt.kind}'
    )
    unknown: list[SchemaProblem] = []
    for problem in problems:
        where = field_path(problem.path)
        if problem.kind == "type":
            raise ApiError.bad_request(
                f"{cannot_handle}: json: cannot unmarshal {json_type_name(problem.value)} into "
                f"Go struct field {rt.kind}.{where} of type {go_type_name(problem.expected)}"
            )
        if problem.kind == "quantity":
            raise ApiError.bad_request(
                f"{cannot_handle}: quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            )
        if problem.kind == "format":
            raise ApiError.bad_request(
                f"{cannot_handle}: illegal base64 data at input byte "
                f"{_first_bad_base64_byte(str(problem.value))}"
            )
        if problem.kind == "unknown":
            unknown.append(problem)
        else:
            result.deferred.append(problem)
    if unknown:
        messages = [f'unknown field "{field_path(p.path)}"' for p in unknown]
        if field_validation == "Strict":
            raise ApiError.bad_request(
                f"{cannot_handle}: strict decoding error: " + ", ".join(messages)
            )
        for problem in unknown:
            parent = _at(obj, problem.path[:-1])
            if isinstance(parent, dict):
                parent.pop(problem.path[-1], None)
        if field_validation != "Ignore":
            result.warnings.extend(messages)
    return result


def _decode_custom(
    rt: ResourceType, obj: JSON, field_validation: str | None, schema: JSON, result: Decoded
) -> None:
    """A custom resource: pruned (unknown fields judged as for built-ins), then defaulted."""
    pruned = structural.prune(obj, schema)
    if pruned:
        version = str(obj.get("apiVersion") or rt.api_version()).split("/")[-1]
        messages = [f'unknown field "{p}"' for p in pruned]
        if field_validation == "Strict":
            raise ApiError.bad_request(
                f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: strict '
                "decoding error: " + ", ".join(messages)
            )
        if field_validation != "Ignore":
            result.warnings.extend(messages)
    structural.apply_defaults(obj, schema)
    result.custom_schema = schema


def drop_unset(obj: JSON) -> None:
    """Drop what Go's decoder would leave unset, so it is omitted on output like ``omitempty``.

    ``null`` anywhere inside objects, and empty label, annotation, finalizer and owner lists of
    the metadata. Custom resources keep their bodies as given.
    """
    _drop_nulls(obj)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in ("labels", "annotations", "finalizers", "ownerReferences"):
            if key in meta and not meta[key]:
                del meta[key]


def _drop_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for item in value.values():
            _drop_nulls(item)
    elif isinstance(value, list):
        for item in value:
            _drop_nulls(item)


def check_field_validation(value: str | None) -> str:
    """The ``fieldValidation`` query parameter: Strict, Warn (default) or Ignore."""
    if value in (None, ""):
        return "Warn"
    if value not in ("Strict", "Warn", "Ignore"):
        raise ApiError.bad_request(
            f"fieldValidation parameter unsupported: {value}. Supported values are: "
            "Strict, Warn, Ignore"
        )
    return value


def _first_bad_base64_byte(text: str) -> int:
    allowed = re.compile(r"[A-Za-z0-9+/=]")
    for index, char in enumerate(text):
        if not allowed.match(char):
            return index
    return len(text) - len(text) % 4


def _at(obj: Any, path: tuple[str | int, ...]) -> Any:
    current = obj
    for part in path:
        if isinstance(current, dict) and isinstance(part, str):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            return None
    return current


# -- create -----------------------------------------------------------------------------------
def validate_create(rt: ResourceType, obj: JSON, decoded: Decoded) -> None:
    """All 422 checks of a new (defaulted) object; raises ``ApiError`` Invalid."""
    errors = validate_object(rt, obj, decoded)
    if errors:
        raise invalid_status(rt, obj.get("metadata", {}).get("name", ""), errors)


def validate_object(rt: ResourceType, obj: JSON, decoded: Decoded) -> list[FieldError]:
    """The field errors of a defaulted object (empty when it is valid)."""
    errors = _metadata_errors(rt, obj.get("metadata") or {})
    errors.extend(_schema_errors(obj, decoded))
    if decoded.custom_schema is not None:
        errors.extend(structural.validate(obj, decoded.custom_schema))
    if rt.key == CRDS.key:
        errors.extend(definition_errors(obj))
    raw_spec = obj.get("spec")
    spec: JSON = raw_spec if isinstance(raw_spec, dict) else {}
    if rt.kind == "Pod":
        errors.extend(_pod_spec_errors(spec, "spec", _POD_RESTART_POLICIES))
    elif rt.kind == "Job":
        errors.extend(_job_spec_errors(spec))
    elif rt.kind == "Service":
        errors.extend(_service_spec_errors(spec))
    return errors


def _schema_errors(obj: JSON, decoded: Decoded) -> list[FieldError]:
    """Required fields and enums of the schema, judged after defaulting.

    Inside ``status`` a missing required scalar becomes its zero value, as Go encodes a field
    without ``omitempty``: the real server accepts such status writes and answers
    ``"imageID": ""``, which typed clients need to deserialize the object.
    """
    errors: list[FieldError] = []
    for problem in decoded.deferred:
        value = _at(obj, problem.path)
        where = field_path(problem.path)
        if problem.kind == "required" and value is None:
            parent = _at(obj, problem.path[:-1])
            zero = {"string": "", "integer": 0, "number": 0, "boolean": False}.get(problem.expected)
            if problem.path[:1] == ("status",) and zero is not None and isinstance(parent, dict):
                parent[problem.path[-1]] = zero
            else:
                errors.append(fe.required(where))
        elif problem.kind == "enum" and value is not None and problem.path[:1] != ("status",):
            allowed = [json.loads(a) for a in problem.expected.split(", ")]
            if value not in allowed:
                errors.append(fe.not_supported(where, value, [str(a) for a in allowed]))
    return errors


def _metadata_errors(rt: ResourceType, meta: JSON) -> list[FieldError]:
    errors: list[FieldError] = []
    name = meta.get("name") or ""
    generate = meta.get("generateName") or ""
    if generate:
        errors.extend(
            fe.invalid("metadata.generateName", generate, m)
            for m in object_name_errors(rt, generate, prefix=True)
        )
    if not name:
        errors.append(fe.required("metadata.name", "name or generateName is required"))
    else:
        errors.extend(fe.invalid("metadata.name", name, m) for m in object_name_errors(rt, name))
    errors.extend(_label_errors(meta.get("labels"), "metadata.labels"))
    for key in meta.get("annotations") or {}:
        errors.extend(
            fe.invalid("metadata.annotations", key, m) for m in qualified_name_errors(key.lower())
        )
    return errors


def _label_errors(labels: Any, where: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in (labels or {}).items():
        errors.extend(fe.invalid(where, key, m) for m in qualified_name_errors(key))
        errors.extend(fe.invalid(where, value, m) for m in label_value_errors(str(value)))
    return errors


def _pod_spec_errors(spec: JSON, base: str, policies: list[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    volumes: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name") or ""
        where = f"{base}.volumes[{i}].name"
        if not name:
            errors.append(fe.required(where))
        elif name in volumes:
            errors.append(fe.duplicate(where, name))
        else:
            errors.extend(fe.invalid(where, name, m) for m in dns1123_label_errors(name))
        volumes.add(name)
    containers = spec.get("containers") or []
    if not containers:
        errors.append(fe.required(f"{base}.containers"))
    # regular containers first, as the real API checks them: a name an init container shares
    # with a regular one is reported on the init container
    seen: set[str] = set()
    for i, container in enumerate(containers):
        where = f"{base}.containers[{i}]"
        errors.extend(_container_errors(container, where, volumes))
        errors.extend(_duplicate_errors(container, where, seen))
        errors.extend(_handler_errors(container, where))
        if "restartPolicy" in container:
            errors.append(
                fe.forbidden(f"{where}.restartPolicy", "may not be set for non-init containers")
            )
    for i, container in enumerate(spec.get("initContainers") or []):
        errors.extend(
            _init_container_errors(container, f"{base}.initContainers[{i}]", seen, volumes)
        )
    policy = spec.get("restartPolicy")
    if not policy:
        errors.append(
            fe.required(
                f"{base}.restartPolicy",
                "valid values: " + ", ".join(json.dumps(p) for p in policies),
            )
        )
    elif policy not in policies:
        errors.append(fe.not_supported(f"{base}.restartPolicy", policy, policies))
    return errors


def _init_container_errors(
    container: JSON, where: str, seen: set[str], volumes: set[str]
) -> list[FieldError]:
    """An init container: ``restartPolicy: Always`` makes it a sidecar (KEP-753), which may
    have probes and lifecycle hooks; an ordinary init container may not."""
    errors = _container_errors(container, where, volumes)
    policy = container.get("restartPolicy")
    if policy is not None and policy != "Always":
        errors.append(fe.not_supported(f"{where}.restartPolicy", policy, ["Always"]))
    errors.extend(_duplicate_errors(container, where, seen))
    if policy == "Always":
        errors.extend(_handler_errors(container, where))
        return errors
    for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
        if key in container:
            errors.append(
                fe.forbidden(
                    f"{where}.{key}",
                    "may not be set for init containers without restartPolicy=Always",
                )
            )
    return errors


def _container_errors(container: JSON, where: str, volumes: set[str]) -> list[FieldError]:
    """What every kind of container is checked for (``validateContainerCommon``)."""
    errors: list[FieldError] = []
    name = container.get("name") or ""
    if not name:
        errors.append(fe.required(f"{where}.name"))
    else:
        errors.extend(fe.invalid(f"{where}.name", name, m) for m in dns1123_label_errors(name))
    if not container.get("image"):
        errors.append(fe.required(f"{where}.image"))
    for j, port in enumerate(container.get("ports") or []):
        number = port.get("containerPort")
        if isinstance(number, int) and not 1 <= number <= 65535:
            errors.append(
                fe.invalid(
                    f"{where}.ports[{j}].containerPort",
                    number,
                    "must be between 1 and 65535, inclusive",
                )
            )
    for j, mount in enumerate(container.get("volumeMounts") or []):
        if mount.get("name") and mount["name"] not in volumes:
            errors.append(fe.not_found(f"{where}.volumeMounts[{j}].name", mount["name"]))
        errors.extend(_propagation_errors(container, mount, where))
    errors.extend(_resource_errors(container.get("resources") or {}, f"{where}.resources"))
    return errors


def _duplicate_errors(container: JSON, where: str, seen: set[str]) -> list[FieldError]:
    """A name used by a container checked before (regular ones first, then init ones)."""
    name = container.get("name") or ""
    duplicate = bool(name) and name in seen
    seen.add(name)
    return [fe.duplicate(f"{where}.name", name)] if duplicate else []


_PROPAGATIONS = ["Bidirectional", "HostToContainer", "None"]


def _propagation_errors(container: JSON, mount: JSON, where: str) -> list[FieldError]:
    """``mountPropagation``: a known mode, Bidirectional only for privileged containers. The
    path names no mount index, as the real API's does not."""
    mode = mount.get("mountPropagation")
    if mode is None:
        return []
    path = f"{where}.volumeMounts.mountPropagation"
    if mode not in _PROPAGATIONS:
        return [fe.not_supported(path, mode, _PROPAGATIONS)]
    privileged = (container.get("securityContext") or {}).get("privileged") is True
    if mode == "Bidirectional" and not privileged:
        return [
            fe.forbidden(
                path, "Bidirectional mount propagation is available only to privileged containers"
            )
        ]
    return []


_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_HOOK_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_PROBE_COUNTERS = (
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
)


def _handler_errors(container: JSON, where: str) -> list[FieldError]:
    """Lifecycle hooks and probes of a container that may have them (regular or sidecar)."""
    errors: list[FieldError] = []
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                errors.extend(
                    _action_errors(lifecycle[hook], f"{where}.lifecycle.{hook}", _HOOK_HANDLERS)
                )
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(kind)
        if isinstance(probe, dict):
            errors.extend(_probe_errors(probe, f"{where}.{kind}", kind))
    return errors


def _probe_errors(probe: JSON, where: str, kind: str) -> list[FieldError]:
    errors = _action_errors(probe, where, _PROBE_HANDLERS)
    for key in _PROBE_COUNTERS:
        value = probe.get(key)
        if isinstance(value, int) and value < 0:
            errors.append(fe.invalid(f"{where}.{key}", value, "must be greater than or equal to 0"))
    grace = probe.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace <= 0:
        errors.append(
            fe.invalid(f"{where}.terminationGracePeriodSeconds", grace, "must be greater than 0")
        )
    if kind != "readinessProbe" and probe.get("successThreshold", 1) != 1:
        errors.append(
            fe.invalid(f"{where}.successThreshold", probe["successThreshold"], "must be 1")
        )
    if kind == "readinessProbe" and grace is not None:
        errors.append(
            fe.invalid(
                f"{where}.terminationGracePeriodSeconds",
                grace,
                "must not be set for readinessProbes",
            )
        )
    return errors


def _action_errors(handler: JSON, where: str, kinds: tuple[str, ...]) -> list[FieldError]:
    """Exactly one handler (exec, httpGet...); an exec handler needs a command."""
    present = [k for k in kinds if k in handler]
    if not present:
        return [fe.required(where, "must specify a handler type")]
    errors: list[FieldError] = []
    if present[0] == "exec" and not (handler.get("exec") or {}).get("command"):
        errors.append(fe.required(f"{where}.exec.command"))
    errors.extend(
        fe.forbidden(f"{where}.{extra}", "may not specify more than 1 handler type")
        for extra in present[1:]
    )
    return errors


def _resource_errors(resources: JSON, where: str) -> list[FieldError]:
    """Requests within limits; extended resources (GPUs) cannot be overcommitted."""
    errors: list[FieldError] = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    for name, value in requests.items():
        native = "/" not in name or name.startswith("kubernetes.io/")
        overcommit = native or name.startswith("requests.")
        try:
            request = parse_quantity(value)
            limit = parse_quantity(limits[name]) if name in limits else None
        except ValueError:
            continue  # a decode error, reported before
        if limit is None:
            if not overcommit:
                errors.append(
                    fe.required(
                        f"{where}.limits", "Limit must be set for non overcommitable resources"
                    )
                )
        elif overcommit and request > limit:
            errors.append(
                fe.invalid(
                    f"{where}.requests",
                    str(value),
                    f"must be less than or equal to {name} limit of {limits[name]}",
                )
            )
        elif not overcommit and request != limit:
            errors.append(
                fe.invalid(
                    f"{where}.requests",
                    str(value),
                    f"must be equal to {name} limit of {limits[name]}",
                )
            )
    return errors


def _job_spec_errors(spec: JSON) -> list[FieldError]:
    errors: list[FieldError] = []
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            errors.append(fe.invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
    template = spec.get("template") or {}
    errors.extend(
        _label_errors(
            (template.get("metadata") or {}).get("labels"), "spec.template.metadata.labels"
        )
    )
    errors.extend(
        _pod_spec_errors(template.get("spec") or {}, "spec.template.spec", _JOB_RESTART_POLICIES)
    )
    return errors


def _service_spec_errors(spec: JSON) -> list[FieldError]:
    errors: list[FieldError] = []
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName"
    if not ports and not headless:
        errors.append(fe.required("spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            errors.append(fe.required(f"spec.ports[{i}].name"))
        elif name in names:
            errors.append(fe.duplicate(f"spec.ports[{i}].name", name))
        names.add(name)
        number = port.get("port")
        if isinstance(number, int) and not 1 <= number <= 65535:
            errors.append(
                fe.invalid(
                    f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive"
                )
            )
    return errors


# -- update -----------------------------------------------------------------------------------
def validate_update(rt: ResourceType, old: JSON, new: JSON, decoded: Decoded) -> None:
    """The object checks plus what may not change; raises ``ApiError`` Invalid."""
    errors = validate_object(rt, new, decoded)
    errors.extend(immutable_field_errors(rt, old, new))
    if errors:
        raise invalid_status(rt, new.get("metadata", {}).get("name", ""), errors)


def immutable_field_errors(rt: ResourceType, old: JSON, new: JSON) -> list[FieldError]:
    """Fields the real API server refuses to change on update."""
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if rt.kind == "Pod":
        return _pod_update_errors(old_spec, new_spec)
    if rt.kind == "Job":
        return _job_update_errors(old, new)
    if rt.kind in ("ConfigMap", "Secret") and old.get("immutable"):
        errors = []
        for key in ("data", "binaryData"):
            if old.get(key) != new.get(key):
                errors.append(fe.forbidden(key, "field is immutable when `immutable` is set"))
        if not new.get("immutable"):
            errors.append(fe.forbidden("immutable", "field is immutable when `immutable` is set"))
        return errors
    changed_ip = old_spec.get("clusterIP") and new_spec.get("clusterIP") != old_spec["clusterIP"]
    if rt.kind == "Service" and changed_ip:
        return [fe.invalid("spec.clusterIP", new_spec.get("clusterIP", ""), "field is immutable")]
    if rt.kind == "PersistentVolumeClaim":
        strip = {"resources", "volumeAttributesClassName"}
        if {k: v for k, v in old_spec.items() if k not in strip} != {
            k: v for k, v in new_spec.items() if k not in strip
        }:
            return [
                fe.forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims",
                )
            ]
    return []


def _pod_update_errors(old_spec: JSON, new_spec: JSON) -> list[FieldError]:
    old_rest = {k: v for k, v in old_spec.items() if k not in _POD_MUTABLE}
    new_rest = {k: json.loads(json.dumps(v)) for k, v in new_spec.items() if k not in _POD_MUTABLE}
    for group in ("containers", "initContainers"):
        for before, after in zip(
            old_rest.get(group) or [], new_rest.get(group) or [], strict=False
        ):
            if isinstance(after, dict):
                after["image"] = before.get("image")
    old_tolerations = old_spec.get("tolerations") or []
    new_tolerations = new_spec.get("tolerations") or []
    removed = [t for t in old_tolerations if t not in new_tolerations]
    if new_rest != old_rest:
        return [fe.forbidden("spec", _POD_UPDATE_FORBIDDEN)]
    if removed:
        return [
            fe.forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            )
        ]
    return []


def _job_update_errors(old: JSON, new: JSON) -> list[FieldError]:
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    errors: list[FieldError] = []
    if new_spec.get("selector") != old_spec.get("selector"):
        errors.append(fe.invalid("spec.selector", new_spec.get("selector"), "field is immutable"))
    if new_spec.get("completions") != old_spec.get("completions"):
        errors.append(
            fe.invalid("spec.completions", new_spec.get("completions"), "field is immutable")
        )
    old_template, new_template = old_spec.get("template") or {}, new_spec.get("template") or {}
    if new_template != old_template:
        never_started = old_spec.get("suspend") and not (old.get("status") or {}).get("startTime")
        if not never_started or _without_directives(old_template) != _without_directives(
            new_template
        ):
            errors.append(fe.invalid("spec.template", new_template, "field is immutable"))
    return errors


def _without_directives(template: JSON) -> JSON:
    """A pod template minus what a suspended Job may still change."""
    spec = {
        k: v for k, v in (template.get("spec") or {}).items() if k not in _JOB_SCHEDULING_DIRECTIVES
    }
    meta = {
        k: v
        for k, v in (template.get("metadata") or {}).items()
        if k not in ("labels", "annotations")
    }
    return {**template, "spec": spec, "metadata": meta}


def preload() -> None:
    """Load the schema library before the first request (fails early without the package)."""
    library().check_for("Pod", "v1")
