"""SPDY/3.1 framing, the server's side of what ``kubectl port-forward`` speaks (and
``kubectl exec``/``attach`` when they do not use a WebSocket: ``remotecommand``).

client-go still multiplexes port-forward streams with SPDY (moby/spdystream): over a
WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``, each binary message a slice of the
SPDY byte stream; kubectl 1.31+ tries this first) or over a raw ``Upgrade: SPDY/3.1``
connection. Only the frames that use needs are built: the client opens streams (SYN_STREAM),
the server accepts them (SYN_REPLY), both send DATA (FIN half-closes) and may reset a stream
(RST_STREAM); PINGs are echoed. spdystream does no flow control, so WINDOW_UPDATE and
SETTINGS are read and ignored.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .spdy_dictionary import HEADER_DICTIONARY

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5
_HEADER = struct.Struct(">II")
Headers = dict[str, list[str]]


class SpdyError(Exception):
    """The peer sent something that is not SPDY/3 (the connection must end)."""


@dataclass(frozen=True)
class Frame:
    """A frame as read: ``kind`` is a control frame type, or 0 for DATA."""

    kind: int
    stream_id: int = 0
    flags: int = 0
    data: bytes = b""
    headers: Headers = field(default_factory=dict)
    value: int = 0  # RST_STREAM status, PING id, GOAWAY status

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class FrameReader:
    """Bytes in, frames out (frames may span or share transport messages)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            first, second = _HEADER.unpack_from(self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < _HEADER.size + length:
                break
            payload = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
            del self._buffer[: _HEADER.size + length]
            flags = second >> 24
            if first & 0x80000000:
                if (first >> 16) & 0x7FFF != VERSION:
                    raise SpdyError(f"unsupported SPDY version {(first >> 16) & 0x7FFF}")
                frames.append(self._control(first & 0xFFFF, flags, payload))
            else:
                frames.append(Frame(0, first & 0x7FFFFFFF, flags, payload))
        return frames

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame:
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            offset = 10 if kind == SYN_STREAM else 4
            if len(payload) < offset:
                raise SpdyError("short SPDY control frame")
            stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
            headers = self._headers(payload[offset:])
            return Frame(kind, stream_id, flags, headers=headers)
        if kind in (RST_STREAM, GOAWAY) and len(payload) >= 8:
            stream_id, value = struct.unpack_from(">II", payload)
            return Frame(kind, stream_id & 0x7FFFFFFF, flags, value=value)
        if kind == PING and len(payload) >= 4:
            return Frame(kind, flags=flags, value=struct.unpack_from(">I", payload)[0])
        return Frame(kind, flags=flags, data=payload)  # SETTINGS, WINDOW_UPDATE, unknown

    def _headers(self, compressed: bytes) -> Headers:
        try:
            block = self._inflate.decompress(compressed)
        except zlib.error as exc:
            raise SpdyError(f"bad SPDY header block: {exc}") from exc
        try:
            (count,) = struct.unpack_from(">I", block)
            offset, headers = 4, {}
            for _ in range(count):
                (size,) = struct.unpack_from(">I", block, offset)
                name = block[offset + 4 : offset + 4 + size].decode().lower()
                offset += 4 + size
                (size,) = struct.unpack_from(">I", block, offset)
                value = block[offset + 4 : offset + 4 + size].decode()
                offset += 4 + size
                headers[name] = value.split("\x00")
        except (struct.error, UnicodeDecodeError) as exc:
            raise SpdyError(f"bad SPDY header block: {exc}") from exc
        return headers


class FrameWriter:
    """Frames out as bytes; one header compressor for the whole connection, as SPDY wants."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zdict=HEADER_DICTIONARY)

    def syn_reply(self, stream_id: int, headers: Headers | None = None) -> bytes:
        return self._control(SYN_REPLY, 0, struct.pack(">I", stream_id) + self._block(headers))

    def data(self, stream_id: int, data: bytes = b"", *, fin: bool = False) -> bytes:
        flags = FLAG_FIN if fin else 0
        return _HEADER.pack(stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data

    def rst_stream(self, stream_id: int, status: int = RST_CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def go_away(self, last_stream_id: int) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream_id, 0))

    def _block(self, headers: Headers | None) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers or {})))
        for name, values in (headers or {}).items():
            for part in (name.lower().encode(), "\x00".join(values).encode()):
                raw += struct.pack(">I", len(part)) + part
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        header = _HEADER.pack(0x80000000 | (VERSION << 16) | kind, (flags << 24) | len(payload))
        return header + payload
