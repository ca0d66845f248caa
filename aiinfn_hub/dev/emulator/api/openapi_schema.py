"""The official Kubernetes object schemas, compiled into fast checks.

The schemas are the strict JSON-schema copies shipped by ``kubernetes-validate`` (unknown fields
are errors). Its own ``validate()`` rebuilds a jsonschema validator with ``$ref`` lookups on every
call, about 2 ms per pod; a schema compiled here into nested closures checks a pod in about
0.1 ms and reports every problem in one pass, which the API needs to answer like kube-apiserver
(all unknown fields in one message, then all missing required fields).

Only the keywords these schemas use are understood: ``type``, ``properties``,
``additionalProperties``, ``required``, ``items``, ``enum``, ``format`` (``byte`` is checked as
base64, others are informative), ``oneOf`` (used for int-or-string and quantities) and ``$ref``.
Definitions are compiled lazily on first use, so start-up costs only reading the JSON files.
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ....kubemodel.quantity import parse_quantity

JSON = dict[str, Any]
FieldPath = tuple[str | int, ...]
SCHEMA_VERSION = "1.33.0"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class SchemaProblem:
    """One violation: ``kind`` is unknown, required, type, enum, format or quantity.

    ``path`` leads to the offending value (for ``unknown`` and ``required``, to the field that
    is unknown or missing); ``expected`` names the wanted type (also of a missing field),
    the format or the allowed values.
    """

    kind: str
    path: FieldPath
    expected: str = ""
    value: Any = None


Check = Callable[[Any, FieldPath, list[SchemaProblem]], None]


def field_path(parts: FieldPath) -> str:
    """``spec.containers[0].image``: the notation of the API server's messages."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def json_type_name(value: Any) -> str:
    """How Go's encoding/json names a JSON value in ``cannot unmarshal X`` errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name != "boolean":
        return False  # bool is an int in Python, never in JSON
    return isinstance(value, _PY_TYPES.get(name, ()))


class SchemaLibrary:
    """The schemas of one Kubernetes version, compiled on demand and cached."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._definitions: JSON | None = None
        self._compiled: dict[str, Check] = {}
        self._kinds: dict[tuple[str, str], Check | None] = {}

    def check_for(self, kind: str, api_version: str) -> Check | None:
        """The check of one kind at one apiVersion, or None when no schema exists."""
        key = (kind, api_version)
        if key not in self._kinds:
            self._kinds[key] = self._load_kind(kind, api_version)
        return self._kinds[key]

    def problems(self, kind: str, api_version: str, obj: Any) -> list[SchemaProblem] | None:
        """Every schema problem of ``obj`` (None when the kind has no schema, e.g. CRDs)."""
        check = self.check_for(kind, api_version)
        if check is None:
            return None
        found: list[SchemaProblem] = []
        check(obj, (), found)
        return found

    # -- loading ---------------------------------------------------------------------------
    def _load_kind(self, kind: str, api_version: str) -> Check | None:
        group, _, version = api_version.rpartition("/")
        suffix = f"{group.split('.')[0]}-{version}" if group else version
        path = self._folder / f"{kind.lower()}-{suffix}.json"
        if not path.is_file():
            return None
        return self._compile(json.loads(path.read_text()))

    def _definition(self, name: str) -> Check:
        """A check that compiles definition ``name`` the first time it runs (allows recursion)."""

        def check(value: Any, path: FieldPath, found: list[SchemaProblem]) -> None:
            compiled = self._compiled.get(name)
            if compiled is None:
                if self._definitions is None:
                    self._definitions = json.loads((self._folder / "_definitions.json").read_text())
                compiled = self._compile(self._definitions["$defs"][name])
                self._compiled[name] = compiled
            compiled(value, path, found)

        return check

    # -- compiling -------------------------------------------------------------------------
    def _compile(self, schema: JSON) -> Check:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name == _QUANTITY:
                return _quantity
            return self._definition(name)
        if "oneOf" in schema:
            return _one_of([self._compile(s) for s in schema["oneOf"]], schema["oneOf"])
        raw_types = schema.get("type")
        types = [raw_types] if isinstance(raw_types, str) else list(raw_types or [])
        types = [t for t in types if t != "null"]
        parts: list[Check] = []
        if schema.get("enum"):
            parts.append(_enum(schema["enum"]))
        if schema.get("format") == "byte":
            parts.append(_base64)
        if "object" in types:
            parts.append(self._object(schema))
        if "array" in types and isinstance(schema.get("items"), dict):
            parts.append(_array(self._compile(schema["items"])))
        return _typed(types, parts)

    def _object(self, schema: JSON) -> Check:
        properties = {
            name: self._compile(sub) for name, sub in (schema.get("properties") or {}).items()
        }
        extra = schema.get("additionalProperties")
        extra_check = self._compile(extra) if isinstance(extra, dict) else None
        closed = extra is False
        required = tuple(
            (key, _first_type((schema.get("properties") or {}).get(key) or {}))
            for key in schema.get("required") or ()
        )

        def check(value: Any, path: FieldPath, found: list[SchemaProblem]) -> None:
            for key, item in value.items():
                sub = properties.get(key)
                if sub is not None:
                    sub(item, (*path, key), found)
                elif extra_check is not None:
                    extra_check(item, (*path, key), found)
                elif closed:
                    found.append(SchemaProblem("unknown", (*path, key)))
            for key, wanted in required:
                if value.get(key) is None:
                    found.append(SchemaProblem("required", (*path, key), wanted))

        return check


def _first_type(schema: JSON) -> str:
    """The non-null type a property schema names ("" for references)."""
    raw = schema.get("type")
    types = [raw] if isinstance(raw, str) else list(raw or [])
    return next((t for t in types if t != "null"), "")


def _quantity(value: Any, path: FieldPath, found: list[SchemaProblem]) -> None:
    """Quantities ("500m", "4Gi") are parsed while decoding: a bad one is a decode error."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        found.append(SchemaProblem("type", path, "string or number", value))
        return
    try:
        parse_quantity(value)
    except ValueError:
        found.append(SchemaProblem("quantity", path, "", value))


def _typed(types: list[str], parts: list[Check]) -> Check:
    """Check the JSON type first; nested checks run only on a value of the right type."""

    def check(value: Any, path: FieldPath, found: list[SchemaProblem]) -> None:
        if value is None:
            return  # Go decodes null as the zero value: never a type error
        if types and not any(_is_type(value, t) for t in types):
            found.append(SchemaProblem("type", path, " or ".join(types), value))
            return
        for part in parts:
            part(value, path, found)

    return check


def _one_of(alternatives: list[Check], schemas: list[JSON]) -> Check:
    """int-or-string and quantities: the alternatives exclude each other by type."""
    names = [
        t
        for s in schemas
        for t in ([s["type"]] if isinstance(s.get("type"), str) else s.get("type") or [])
        if t != "null"
    ]

    def check(value: Any, path: FieldPath, found: list[SchemaProblem]) -> None:
        for alternative in alternatives:
            scratch: list[SchemaProblem] = []
            alternative(value, path, scratch)
            if not scratch:
                return
        found.append(SchemaProblem("type", path, " or ".join(names), value))

    return check


def _enum(allowed: list[Any]) -> Check:
    def check(value: Any, path: FieldPath, found: list[SchemaProblem]) -> None:
        if value not in allowed:
            found.append(
                SchemaProblem("enum", path, ", ".join(json.dumps(a) for a in allowed), value)
            )

    return check


def _base64(value: Any, path: FieldPath, found: list[SchemaProblem]) -> None:
    if isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            found.append(SchemaProblem("format", path, "byte", value))


def _array(item_check: Check) -> Check:
    def check(value: Any, path: FieldPath, found: list[SchemaProblem]) -> None:
        for index, item in enumerate(value):
            item_check(item, (*path, index), found)

    return check


def schema_folder(version: str = SCHEMA_VERSION) -> Path | None:
    """Where ``kubernetes-validate`` keeps the strict schemas, found without importing it.

    Importing the package pulls in jsonschema and takes over a second; only its data is needed.
    """
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    folder = root / "kubernetes-json-schema" / f"v{version}-local-strict"
    return folder if folder.is_dir() else None


@functools.cache
def library(version: str = SCHEMA_VERSION) -> SchemaLibrary:
    """The shared schema library; RuntimeError when ``kubernetes-validate`` is not installed."""
    folder = schema_folder(version)
    if folder is None:
        raise RuntimeError(
            "schema validation needs the kubernetes-validate package (pip install "
            "'aiinfn-hub[dev]'), or start the emulator with validate=False"
        )
    return SchemaLibrary(folder)


_GO_TYPES = {"integer": "int64", "number": "float64", "boolean": "bool", "string": "string"}


def go_type_name(expected: str) -> str:
    """The Go type the API server would name in a decoding error (approximately)."""
    first = expected.split(" or ")[0]
    if first == "array":
        return "[]interface {}"
    if first == "object":
        return "map[string]interface {}"
    return _GO_TYPES.get(first, first)
