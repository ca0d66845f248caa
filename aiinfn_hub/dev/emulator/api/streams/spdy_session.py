"""A SPDY/3.1 session on the server's side, shared by port-forward and exec/attach.

``SpdySession`` turns the client's bytes (``feed``) into stream events for a subclass
(``open_stream``, ``stream_data``, ``stream_reset``), echoes PINGs, and sends the server's
frames in order through one queue (``run`` ends with the session). ``serve_spdy_upgrade``
switches a checked HTTP request to raw SPDY (``101 Switching Protocols``, ``Upgrade:
SPDY/3.1``), as kubectl asks for it, and serves a session on the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.iostream
import tornado.web

from . import spdy
from .open_streams import OpenStreams

SendBytes = Callable[[bytes], Awaitable[None]]
_READ_CHUNK = 64 * 1024
# once the session has said everything, how long the client gets to close the connection
# itself (closing first with its frames unread could reset what it has not read yet)
_CLIENT_CLOSE_SECONDS = 2.0


class SpdySession:
    """Frames in through ``feed``, frames out in order through ``send``; ``run`` sends until
    ``end`` (or the client leaves)."""

    def __init__(self, send: SendBytes) -> None:
        self._send = send
        self._reader = spdy.FrameReader()
        self.writer = spdy.FrameWriter()
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.last_stream = 0

    def feed(self, data: bytes) -> None:
        try:
            frames = self._reader.feed(data)
        except spdy.SpdyError:
            self.put(self.writer.go_away(self.last_stream))
            self.end()
            return
        for frame in frames:
            self._frame(frame)

    def client_gone(self) -> None:
        self.end()

    def put(self, frame: bytes) -> None:
        """Queue one frame for the client."""
        self._out.put_nowait(frame)

    def end(self) -> None:
        """Nothing more to send: ``run`` returns after what is queued."""
        self._out.put_nowait(None)

    async def run(self) -> None:
        try:
            while (data := await self._out.get()) is not None:
                await self._send(data)
        finally:
            self.finish()

    def _frame(self, frame: spdy.Frame) -> None:
        if frame.kind == spdy.SYN_STREAM:
            self.last_stream = max(self.last_stream, frame.stream_id)
            self.open_stream(frame.stream_id, frame.headers)
        elif frame.kind == 0:
            self.stream_data(frame.stream_id, frame.data, frame.fin)
        elif frame.kind == spdy.RST_STREAM:
            self.stream_reset(frame.stream_id)
        elif frame.kind == spdy.PING:
            self.put(self.writer.ping(frame.value))
        elif frame.kind == spdy.GOAWAY:
            self.client_gone()

    # -- for subclasses ----------------------------------------------------------------
    def open_stream(self, stream_id: int, headers: spdy.Headers) -> None:
        """The client opened a stream: reply (``accept``) or refuse it (``refuse``)."""
        self.refuse(stream_id)

    def stream_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        """Data (maybe empty) on a client stream; ``fin``: the client half-closed it."""

    def stream_reset(self, stream_id: int) -> None:
        """The client reset a stream."""

    def finish(self) -> None:
        """The session is over: release what it holds."""

    def accept(self, stream_id: int) -> None:
        self.put(self.writer.syn_reply(stream_id))

    def refuse(self, stream_id: int) -> None:
        self.put(self.writer.rst_stream(stream_id, spdy.RST_PROTOCOL_ERROR))


def stream_type(headers: spdy.Headers) -> str:
    """The ``streamType`` header of a stream client-go opens."""
    return (headers.get("streamtype") or [""])[0]


async def serve_spdy_upgrade(
    handler: tornado.web.RequestHandler,
    open_streams: OpenStreams,
    protocol: str | None,
    make_session: Callable[[SendBytes], Any],
) -> None:
    """Answer 101 with ``Upgrade: SPDY/3.1`` (and the negotiated ``protocol``), then serve the
    session ``make_session(send)`` made until it ends or the client leaves."""
    stream = handler.detach()
    serving = asyncio.current_task()
    if serving is not None:
        open_streams.track(serving, stream.close)
    head = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    if protocol:
        head += b"X-Stream-Protocol-Version: " + protocol.encode() + b"\r\n"
    try:
        await stream.write(head + b"\r\n")
    except tornado.iostream.StreamClosedError:
        stream.close()
        return

    async def send(data: bytes) -> None:
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            await stream.write(data)

    session: SpdySession = make_session(send)

    async def read() -> None:
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            while True:
                session.feed(await stream.read_bytes(_READ_CHUNK, partial=True))
        session.client_gone()

    reader = asyncio.ensure_future(read())
    try:
        await session.run()
        await asyncio.wait([reader], timeout=_CLIENT_CLOSE_SECONDS)
    finally:
        session.client_gone()
        stream.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await reader
