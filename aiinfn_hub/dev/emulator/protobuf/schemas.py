"""The protobuf schemas of Kubernetes' built-in types, read from a Go client on this machine.

Go clients (kubectl 1.31 and later, client-go's typed clientsets) send built-in objects as
protobuf. Their schemas are the ``generated.proto`` files of k8s.io/api and apimachinery,
which every Go program built with them carries, gzipped, as ``FileDescriptorProto``s. So the
emulator reads them from the ``kubectl`` on this machine (or a binary named by
``AIINFN_PROTO_SCHEMA_BINARIES``, colon-separated), the very client whose requests it decodes;
none found: protobuf bodies are answered 415, as a server that cannot decode them would.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .wire import LENGTH, VARINT, fields

# FieldDescriptorProto.type values used by Kubernetes' schemas
DOUBLE, FLOAT, INT64, UINT64, INT32, FIXED64, FIXED32, BOOL, STRING = 1, 2, 3, 4, 5, 6, 7, 8, 9
MESSAGE, BYTES, UINT32, ENUM, SFIXED32, SFIXED64, SINT32, SINT64 = 11, 12, 13, 14, 15, 16, 17, 18
REPEATED = 3  # FieldDescriptorProto.label
_GZIP_HEAD = re.compile(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00")
# Go struct tags of embedded structs, kept in the binary for reflection
_INLINE_TAG = re.compile(rb'json:",inline" protobuf:"bytes,\d+(?:,[a-z]+)*,name=(\w+)"')
# embedded structs of k8s.io/api whose tags name no field (the field is then the type's name)
# or that an older client may lack; with the tags found, JSON's flat fields (see decode.py)
INLINE_FIELDS = frozenset(
    {
        "volumeSource",
        "persistentVolumeSource",
        "handler",
        "ephemeralContainerCommon",
        "ingressRuleValue",
        "localObjectReference",
        "rule",
        "ruleWithOperations",
        "deviceConfiguration",
    }
)
_MAX_DESCRIPTOR = 4 << 20


@dataclass(frozen=True)
class FieldSchema:
    name: str
    number: int
    type: int
    repeated: bool
    type_name: str  # fully qualified with a leading dot, for messages


@dataclass
class MessageSchema:
    name: str  # fully qualified, with a leading dot
    fields: dict[int, FieldSchema] = field(default_factory=dict)
    map_entry: bool = False


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else ""


def _field(data: bytes) -> FieldSchema:
    name, number, ftype, label, type_name = "", 0, 0, 1, ""
    for num, wire, value in fields(data):
        if num == 1 and wire == LENGTH:
            name = _text(value)
        elif num == 3 and wire == VARINT:
            number = int(value)
        elif num == 4 and wire == VARINT:
            label = int(value)
        elif num == 5 and wire == VARINT:
            ftype = int(value)
        elif num == 6 and wire == LENGTH:
            type_name = _text(value)
    return FieldSchema(name, number, ftype, label == REPEATED, type_name)


def _message(data: bytes, scope: str, into: dict[str, MessageSchema]) -> None:
    nested: list[bytes] = []
    schema = MessageSchema("")
    for num, wire, value in fields(data):
        if wire != LENGTH or not isinstance(value, bytes):
            continue
        if num == 1:
            schema.name = f"{scope}.{value.decode()}"
        elif num == 2:
            item = _field(value)
            schema.fields[item.number] = item
        elif num == 3:
            nested.append(value)
        elif num == 7:  # MessageOptions: map_entry = 7
            schema.map_entry = any(n == 7 and v == 1 for n, _, v in fields(value))
    into[schema.name] = schema
    for inner in nested:
        _message(inner, schema.name, into)


def parse_file_descriptor(data: bytes) -> tuple[str, dict[str, MessageSchema]]:
    """A ``FileDescriptorProto``'s file name and its messages by full name."""
    name, package, messages = "", "", []
    for num, wire, value in fields(data):
        if wire != LENGTH or not isinstance(value, bytes):
            continue
        if num == 1:
            name = value.decode()
        elif num == 2:
            package = value.decode()
        elif num == 4:
            messages.append(value)
    found: dict[str, MessageSchema] = {}
    for message in messages:
        _message(message, f".{package}", found)
    return name, found


def inline_fields_in(data: bytes) -> set[str]:
    """The protobuf names of the embedded (``json:",inline"``) structs a Go binary's tags
    declare."""
    return {name.decode() for name in _INLINE_TAG.findall(data)} - {"typeMeta"}


def descriptors_in(data: bytes) -> dict[str, MessageSchema]:
    """Every Kubernetes ``generated.proto`` schema embedded in a Go binary's bytes."""
    found: dict[str, MessageSchema] = {}
    for match in _GZIP_HEAD.finditer(data):
        start = match.start()
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[start : start + 512], 96)
        except zlib.error:
            continue
        if b"k8s.io/" not in head or b"generated.proto" not in head:
            continue
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            descriptor = inflater.decompress(data[start : start + _MAX_DESCRIPTOR], _MAX_DESCRIPTOR)
            _, messages = parse_file_descriptor(descriptor)
        except (zlib.error, ValueError):
            continue
        found.update(messages)
    return found


def schema_binaries() -> list[Path]:
    """Where to look: ``AIINFN_PROTO_SCHEMA_BINARIES`` if set, else ``kubectl`` on PATH."""
    named = os.environ.get("AIINFN_PROTO_SCHEMA_BINARIES")
    if named is not None:
        return [Path(p) for p in named.split(":") if p]
    kubectl = shutil.which("kubectl")
    return [Path(kubectl).resolve()] if kubectl else []


class SchemaRegistry:
    """The schemas, loaded once on first use (a Go binary is read in well under a second)."""

    def __init__(self, binaries: list[Path] | None = None) -> None:
        self._binaries = binaries
        self._messages: dict[str, MessageSchema] | None = None
        self._kinds: dict[tuple[str, str], list[str]] = {}
        self._inline: set[str] = set(INLINE_FIELDS)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, MessageSchema]:
        with self._lock:
            if self._messages is None:
                messages: dict[str, MessageSchema] = {}
                for binary in self._binaries if self._binaries is not None else schema_binaries():
                    try:
                        data = binary.read_bytes()
                    except OSError:
                        continue
                    messages.update(descriptors_in(data))
                    self._inline |= inline_fields_in(data)
                for name in messages:
                    package, _, kind = name.rpartition(".")
                    version = package.rpartition(".")[2]
                    self._kinds.setdefault((version, kind), []).append(name)
                self._messages = messages
            return self._messages

    def message(self, name: str) -> MessageSchema | None:
        return self._load().get(name)

    def for_kind(self, api_version: str, kind: str) -> MessageSchema | None:
        """The schema of ``kind`` in ``api_version`` ("v1", "apps/v1"...), None if unknown."""
        messages = self._load()
        group, _, version = api_version.rpartition("/")
        candidates = self._kinds.get((version, kind), [])
        if not candidates:
            return None
        if len(candidates) == 1:
            return messages[candidates[0]]
        wanted = group.split(".")[0] if group else "core"
        for name in candidates:
            if f".{wanted}." in name:
                return messages[name]
        return None

    @property
    def inline_fields(self) -> set[str]:
        """Field names of embedded structs, whose fields JSON puts in the enclosing object."""
        self._load()
        return self._inline

    @property
    def available(self) -> bool:
        return bool(self._load())
