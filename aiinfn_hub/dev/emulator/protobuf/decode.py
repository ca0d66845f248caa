"""Kubernetes' protobuf encoding to the JSON the API serves: what a Go client's body says.

A body is ``k8s\\x00`` then a ``runtime.Unknown``: the object's apiVersion and kind, and the
object encoded with its ``generated.proto`` schema (``schemas``). Decoded as kube-apiserver's
Go types would read it, then written as their JSON is:

- the few apimachinery types with a JSON form of their own: Time and MicroTime (RFC 3339),
  Duration ("1h0m0s"), Quantity and IntOrString (a string or a number), RawExtension and
  FieldsV1 (embedded JSON), the ``items`` wrappers of named string lists (ExtraValue, Verbs);
  bytes as base64, maps as objects;
- Go's embedded structs (``json:",inline"``) are fields in protobuf and flat in JSON: a
  volume's source, a probe's handler, an ingress rule's value, a key selector's name
  (``SchemaRegistry.inline_fields``);
- Go writes every plain (non-pointer) field, set or not, and a pointer only when set. An empty
  string (but ``storageClassName: ""``, which is meant) and a zero Time or Quantity mean unset
  (dropped, so defaults apply as on a server), so
  does ``false`` except where a pointer's unset means true (``allowPrivilegeEscalation``,
  ``automountServiceAccountToken``...: ``_FALSE_MEANT``); ``0`` is kept (``replicas: 0``,
  ``runAsUser: 0``) except in plain fields where it means unset (``_ZERO_UNSET``); ``{}`` is
  kept (``emptyDir: {}`` selects a volume type).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
from typing import Any

from .schemas import (
    BOOL,
    BYTES,
    DOUBLE,
    FLOAT,
    MESSAGE,
    STRING,
    MessageSchema,
    SchemaRegistry,
)
from .wire import FIXED32, FIXED64, LENGTH, VARINT, WireError, fields, packed_varints, signed

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_META = ".k8s.io.apimachinery.pkg.apis.meta.v1."
_MAX_DEPTH = 64
_UNSET = object()
# IntOrString fields that are plain values, not pointers: 0 is what unset looks like there
# (the service port's targetPort defaults to its port); elsewhere 0 may be meant
_PLAIN_INT_OR_STRING = frozenset({"targetPort"})
# pointer booleans whose unset means true: an explicit false is kept
_FALSE_MEANT = frozenset(
    {
        "allowPrivilegeEscalation",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "hostUsers",
        "allocateLoadBalancerNodePorts",
        "attachRequired",
        "ready",
        "serving",
    }
)
# plain integers (omitted from JSON when 0) whose 0 means unset, defaulted by the server
_ZERO_UNSET = frozenset(
    {
        "generation",
        "observedGeneration",
        "hostPort",
        "nodePort",
        "minReadySeconds",
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
        "number",
        "healthCheckNodePort",
    }
)
# apimachinery's types whose JSON is not an object of their fields (see Decoder._special)
_SPECIAL = frozenset(
    {
        f"{_META}Time",
        f"{_META}MicroTime",
        f"{_META}Duration",
        f"{_META}FieldsV1",
        ".k8s.io.apimachinery.pkg.api.resource.Quantity",
        ".k8s.io.apimachinery.pkg.util.intstr.IntOrString",
        ".k8s.io.apimachinery.pkg.runtime.RawExtension",
    }
)
# pointer strings whose "" is meant ("no class": no dynamic provisioning)
_EMPTY_MEANT = frozenset({"storageClassName", "volumeAttributesClassName"})
# the year 1 to 9999, what Go's RFC 3339 time formats
_TIME_RANGE = range(-62135596800, 253402300800)


class ProtobufError(ValueError):
    """The body cannot be read (the message says why, for the client)."""


class UnknownKind(ProtobufError):
    """No schema for the body's kind here."""


def _scalar(ftype: int, wire: int, value: int | bytes) -> Any:
    if ftype in (STRING, BYTES) and not isinstance(value, bytes):
        raise ProtobufError("a number where a string or bytes were expected")
    if isinstance(value, bytes):
        if ftype == STRING:
            return value.decode("utf-8", errors="replace")
        if ftype == BYTES:
            return base64.b64encode(value).decode()
        raise ProtobufError("a length-delimited value where a number was expected")
    if ftype == BOOL:
        return bool(value)
    if ftype == DOUBLE and wire == FIXED64:
        return struct.unpack("<d", struct.pack("<Q", value))[0]
    if ftype == FLOAT and wire == FIXED32:
        return struct.unpack("<f", struct.pack("<I", value))[0]
    return signed(value)


def _number(values: dict[int, int | bytes], number: int) -> int:
    value = values.get(number, 0)
    if not isinstance(value, int):
        raise ProtobufError(f"bytes where field {number}'s number was expected")
    return value


def _text(values: dict[int, int | bytes], number: int) -> str:
    value = values.get(number, b"")
    if not isinstance(value, bytes):
        raise ProtobufError(f"a number where field {number}'s text was expected")
    return value.decode()


def _unset(name: str, ftype: int, value: Any) -> bool:
    """Whether a plain field's value is its zero that JSON leaves out (see the module)."""
    if ftype == STRING:
        return bool(value == "") and name not in _EMPTY_MEANT
    if ftype == BOOL:
        return value is False and name not in _FALSE_MEANT
    return value == 0 and name in _ZERO_UNSET


def _rfc3339(seconds: int, nanos: int, micro: bool) -> str:
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _go_duration(nanoseconds: int) -> str:
    """Go's time.Duration.String() for whole seconds and above, e.g. "1h0m0s", "1m30s"."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    total = abs(nanoseconds)
    seconds, fraction = divmod(total, 10**9)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs}" + (f".{fraction:09d}".rstrip("0") if fraction else "")
    if hours:
        return f"{sign}{hours}h{minutes}m{sec_text}s"
    if minutes:
        return f"{sign}{minutes}m{sec_text}s"
    return f"{sign}{sec_text}s"


class Decoder:
    """Objects from protobuf bodies, with the schemas of ``registry``."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def decode(self, body: bytes) -> dict[str, Any]:
        """The object a ``k8s\\x00``-prefixed body holds, as JSON; ProtobufError otherwise."""
        if not body.startswith(MAGIC):
            raise ProtobufError("the body does not start with Kubernetes' protobuf prefix")
        api_version = kind = ""
        raw = b""
        try:
            for number, wire, value in fields(body[len(MAGIC) :]):
                if number == 1 and wire == LENGTH and isinstance(value, bytes):
                    for n, w, v in fields(value):
                        if w == LENGTH and isinstance(v, bytes):
                            if n == 1:
                                api_version = v.decode()
                            elif n == 2:
                                kind = v.decode()
                elif number == 2 and wire == LENGTH and isinstance(value, bytes):
                    raw = value
        except (WireError, UnicodeDecodeError) as exc:
            raise ProtobufError(f"the protobuf body is malformed: {exc}") from exc
        if not kind:
            raise ProtobufError("the protobuf body names no kind")
        schema = self.registry.for_kind(api_version, kind)
        if schema is None:
            where = (
                ""
                if self.registry.available
                else ": no kubectl with Kubernetes' schemas found on PATH (send JSON, or set "
                "AIINFN_PROTO_SCHEMA_BINARIES to a Go client built with k8s.io/api)"
            )
            raise UnknownKind(f"no protobuf schema for {kind} in {api_version or 'v1'} here{where}")
        try:
            obj = self._message(schema, raw, 0)
        except (ValueError, OverflowError, RecursionError) as exc:  # WireError, JSON's too
            raise ProtobufError(f"the protobuf body of {kind} is malformed: {exc}") from exc
        if not isinstance(obj, dict):
            raise ProtobufError(f"the protobuf body of {kind} is not an object")
        return {"kind": kind, "apiVersion": api_version, **obj}

    # -- messages -----------------------------------------------------------------------------
    def _message(self, schema: MessageSchema, data: bytes, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ProtobufError("the protobuf body nests too deep")
        special = self._special(schema.name, data)
        if special is not _UNSET:
            return special
        out: dict[str, Any] = {}
        for number, wire, value in fields(data):
            spec = schema.fields.get(number)
            if spec is None:
                continue  # a field newer than this machine's client: as a server that lacks it
            if spec.type == MESSAGE:
                if not isinstance(value, bytes):
                    raise ProtobufError(f"{spec.name}: a number where a message was expected")
                inner = self.registry.message(spec.type_name)
                if inner is None:
                    continue
                if inner.map_entry:
                    key, item = self._entry(inner, value, depth + 1)
                    out.setdefault(spec.name, {})[key] = item
                    continue
                item = self._message(inner, value, depth + 1)
                if item == 0 and spec.name in _PLAIN_INT_OR_STRING:
                    continue  # unset: the server defaults it
                if spec.repeated:
                    out.setdefault(spec.name, []).append(item)
                elif spec.name in self.registry.inline_fields and isinstance(item, dict):
                    out.update(item)
                elif item is not None:
                    out[spec.name] = item
            elif spec.repeated:
                values = (
                    packed_varints(value)
                    if isinstance(value, bytes) and spec.type not in (STRING, BYTES)
                    else [value]
                )
                items = out.setdefault(spec.name, [])
                items.extend(
                    _scalar(spec.type, VARINT if isinstance(v, int) else wire, v) for v in values
                )
            else:
                item = _scalar(spec.type, wire, value)
                if _unset(spec.name, spec.type, item):
                    out.pop(spec.name, None)
                    continue
                out[spec.name] = item
        return out

    def _entry(self, schema: MessageSchema, data: bytes, depth: int) -> tuple[str, Any]:
        key: Any = ""
        item: Any = None
        for number, wire, value in fields(data):
            spec = schema.fields.get(number)
            if spec is None:
                continue
            if spec.type == MESSAGE:
                inner = self.registry.message(spec.type_name)
                if inner is not None and isinstance(value, bytes):
                    parsed = self._message(inner, value, depth + 1)
                    item = parsed
            else:
                scalar = _scalar(spec.type, wire, value)
                if number == 1:
                    key = scalar
                else:
                    item = scalar
        if item is None:
            value_spec = schema.fields.get(2)
            item = "" if value_spec is not None and value_spec.type in (STRING, BYTES) else None
        return str(key), item

    def _special(self, name: str, data: bytes) -> Any:
        """The JSON form of apimachinery's types that have one; _UNSET for ordinary ones."""
        if name.endswith(".ExtraValue") or name == f"{_META}Verbs":
            return [v.decode() for n, _, v in fields(data) if n == 1 and isinstance(v, bytes)]
        if name not in _SPECIAL:
            return _UNSET  # an ordinary message: read once, by _message
        values = {n: v for n, _, v in fields(data)}
        short = name.rpartition(".")[2]
        if name in (f"{_META}Time", f"{_META}MicroTime"):
            seconds, nanos = signed(_number(values, 1)), _number(values, 2)
            if seconds == 0 and nanos == 0:
                return None
            if seconds not in _TIME_RANGE or nanos >= 10**9:
                raise ProtobufError(f"a {short} out of range")
            return _rfc3339(seconds, nanos, micro=short == "MicroTime")
        if name == f"{_META}Duration":
            return _go_duration(signed(_number(values, 1)))
        if name == ".k8s.io.apimachinery.pkg.api.resource.Quantity":
            return _text(values, 1) or None
        if name == ".k8s.io.apimachinery.pkg.util.intstr.IntOrString":
            if _number(values, 1) == 1:
                return _text(values, 3) or None
            return signed(_number(values, 2))
        if name in (".k8s.io.apimachinery.pkg.runtime.RawExtension", f"{_META}FieldsV1"):
            raw = values.get(1, b"")
            if not isinstance(raw, bytes):
                raise ProtobufError(f"a number where the {short}'s JSON was expected")
            return json.loads(raw) if raw else None
        return _UNSET
