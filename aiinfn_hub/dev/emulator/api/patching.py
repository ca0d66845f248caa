"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch.

Strategic merge covers what clients send for the kinds we serve: lists of named things
(containers, volumes, env, ports...) merge by their key, ``$patch: delete|replace`` directives
work, ``$setElementOrder``/``$retainKeys`` are accepted; other lists are replaced.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import ApiError

JSON = dict[str, Any]

# list field name -> merge key, as in the Go types' patchMergeKey tags
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "env": "name",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "finalizers": "",  # merged as a set of scalars
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch for the common cases of the built-in kinds."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return None
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
                continue
            if key.startswith("$deleteFromPrimitiveList/"):
                name = key.split("/", 1)[1]
                result[name] = [v for v in result.get(name, []) if v not in value]
                continue
            if value is None:
                result.pop(key, None)
                continue
            merged = strategic_merge_patch(result.get(key), value, key)
            if merged is None and isinstance(value, dict) and value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = merged
        return result
    if isinstance(patch, list) and field in MERGE_KEYS and isinstance(target, list):
        return _merge_list(target, patch, _merge_key(field, target, patch))
    if isinstance(patch, list):
        return [
            {k: v for k, v in item.items() if k != "$patch"} if isinstance(item, dict) else item
            for item in copy.deepcopy(patch)
            if not (isinstance(item, dict) and item.get("$patch") == "delete")
        ]
    return copy.deepcopy(patch)


def _merge_key(field: str, target: list[Any], patch: list[Any]) -> str:
    """The merge key of a list; ``ports`` merge by containerPort in pods, by port in Services."""
    key = MERGE_KEYS[field]
    if field == "ports":
        items = [i for i in target + patch if isinstance(i, dict)]
        if items and not any("containerPort" in i for i in items):
            key = "port"
    return key


def _merge_list(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    if not key:  # a set of scalars
        out = list(target)
        out.extend(v for v in patch if v not in out)
        return out
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    out = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            out.append(copy.deepcopy(item))
            continue
        index = next(
            (i for i, cur in enumerate(out) if isinstance(cur, dict) and cur.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
            continue
        if index is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[index] = strategic_merge_patch(out[index], item)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our "
            f"request: invalid JSON pointer {path!r}",
        )
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> tuple[Any, str]:
    current = doc
    for part in parts[:-1]:
        if isinstance(current, list):
            current = current[int(part)]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        else:
            raise KeyError(part)
    return current, parts[-1]


def json_patch(target: Any, operations: list[JSON]) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test); errors are 422 like the real API."""
    doc = copy.deepcopy(target)
    for op in operations:
        try:
            doc = _apply_op(doc, op)
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: "
                f"{op.get('op')} operation does not apply: doc is missing path: "
                f'"{op.get("path")}": {exc}',
            ) from exc
    return doc


def _apply_op(doc: Any, op: JSON) -> Any:
    kind = op.get("op")
    parts = _pointer(str(op.get("path", "")))
    if kind == "test":
        if _get(doc, parts) != op.get("value"):
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in "
                f"our request: testing value {op.get('path')} failed",
            )
        return doc
    if kind in ("move", "copy"):
        from_parts = _pointer(str(op.get("from", "")))
        value = copy.deepcopy(_get(doc, from_parts))
        if kind == "move":
            doc = _remove(doc, from_parts)
        return _add(doc, parts, value)
    if kind == "add":
        return _add(doc, parts, copy.deepcopy(op.get("value")))
    if kind == "remove":
        return _remove(doc, parts)
    if kind == "replace":
        _get(doc, parts)  # must exist
        if not parts:
            return copy.deepcopy(op.get("value"))
        doc = _remove(doc, parts)
        return _add(doc, parts, copy.deepcopy(op.get("value")))
    raise ApiError(422, "Invalid", f"Unexpected kind: {kind}")


def _get(doc: Any, parts: list[str]) -> Any:
    current = doc
    for part in parts:
        current = current[int(part)] if isinstance(current, list) else current[part]
    return current


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _resolve(doc, parts)
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if index > len(parent):
                raise IndexError(index)
            parent.insert(index, value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, last = _resolve(doc, parts)
    if isinstance(parent, list):
        parent.pop(int(last))
    else:
        del parent[last]
    return doc
