"""Protocol Buffers' wire format, read only: the fields of one encoded message.

Enough for Kubernetes' objects and for the ``FileDescriptorProto`` their schemas come in:
varints, 64- and 32-bit fixed values and length-delimited bytes (groups are not used by either).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint starting at ``at`` and the offset after it."""
    value = shift = 0
    while True:
        if at >= len(data):
            raise WireError("a varint runs past the end of the message")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise WireError("a varint is longer than 10 bytes")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` in order: an int for varints and fixed values
    (unsigned), bytes for length-delimited ones."""
    at = 0
    while at < len(data):
        key, at = read_varint(data, at)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == VARINT:
            value, at = read_varint(data, at)
            yield number, wire_type, value
        elif wire_type == LENGTH:
            size, at = read_varint(data, at)
            if at + size > len(data):
                raise WireError(f"field {number} runs past the end of the message")
            yield number, wire_type, data[at : at + size]
            at += size
        elif wire_type == FIXED64:
            if at + 8 > len(data):
                raise WireError(f"field {number} runs past the end of the message")
            yield number, wire_type, struct.unpack_from("<Q", data, at)[0]
            at += 8
        elif wire_type == FIXED32:
            if at + 4 > len(data):
                raise WireError(f"field {number} runs past the end of the message")
            yield number, wire_type, struct.unpack_from("<I", data, at)[0]
            at += 4
        else:
            raise WireError(f"field {number} has wire type {wire_type}, not used here")


def packed_varints(data: bytes) -> list[int]:
    """A packed repeated scalar field's varints."""
    values, at = [], 0
    while at < len(data):
        value, at = read_varint(data, at)
        values.append(value)
    return values


def signed(value: int) -> int:
    """Two's complement: int32 and int64 arrive as unsigned 64-bit varints (negative int32s
    sign-extended)."""
    return value - (1 << 64) if value >= 1 << 63 else value
