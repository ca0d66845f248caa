"""Exec and attach over SPDY: the remote-command protocol of kubectl before 1.30 (and of 1.30+
with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``, or when its WebSocket upgrade fails).

The client opens one stream per channel, named by its ``streamType`` header: ``error``
always, ``stdin``/``stdout``/``stderr`` as the request asks (with a terminal there is no
``stderr``), ``resize`` with a terminal (v3+). As the kubelet does, the command starts once
every expected stream is there (the client gets 30 seconds to open them) and, with a
terminal, its first size has come (or a second has passed). Stdin data goes to
the session and its FIN (or a reset) ends stdin; the resize stream carries JSON sizes
(``{"Width": w, "Height": h}``) one after another. When the session ends, the error stream
gets what the negotiated version writes (``channels.ChannelProtocol.status_payload``: a
``Status`` from v4 on), every stream is half-closed, and the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from . import spdy
from .channels import STDERR, STDOUT, ChannelProtocol
from .spdy_session import SendBytes, SpdySession, stream_type
from .targets import StreamOptions

log = logging.getLogger(__name__)
JSON = dict[str, Any]
SendChannel = Callable[[int, bytes], Awaitable[None]]
# how long the kubelet's streaming server waits for the client's streams (its default)
STREAM_CREATION_SECONDS = 30.0
# with a terminal, how long the command waits for the client's first size (kubectl sends it
# right after opening its streams; started before, the command would see a 0x0 terminal)
FIRST_SIZE_SECONDS = 1.0
_RESIZE_BUFFER_LIMIT = 4096
STREAM_TYPES = ("error", "stdin", "stdout", "stderr", "resize")


class ChannelSession(Protocol):
    """What exec and attach sessions take from the client's channels or streams."""

    def stdin_data(self, data: bytes) -> None: ...
    def stdin_closed(self) -> None: ...
    def resize(self, columns: int, rows: int) -> None: ...
    def client_gone(self) -> None: ...


# runs the exec or attach, sending output through the callable, until the event (the client
# left) if need be; its final status (None: nothing to report)
Work = Callable[[SendChannel, asyncio.Event], Awaitable[JSON | None]]


def expected_streams(options: StreamOptions, protocol: ChannelProtocol) -> set[str]:
    """The stream types the kubelet waits for before it starts the command."""
    expected = {"error"}
    for name, wanted in (
        ("stdin", options.stdin),
        ("stdout", options.stdout),
        ("stderr", options.stderr),
        ("resize", options.tty and protocol.version >= 3),
    ):
        if wanted:
            expected.add(name)
    return expected


class SpdyRemoteCommand(SpdySession):
    """One exec or attach over SPDY; ``run`` ends when the command has been reported or the
    client has gone."""

    def __init__(
        self,
        send: SendBytes,
        protocol: ChannelProtocol,
        options: StreamOptions,
        client: ChannelSession | None,
        work: Work,
    ) -> None:
        super().__init__(send)
        self._protocol = protocol
        self._client = client
        self._work = work
        self._expected = expected_streams(options, protocol)
        self._streams: dict[str, int] = {}  # stream type -> id
        self._types: dict[int, str] = {}  # id -> stream type
        self._ready = asyncio.Event()
        self._sized = asyncio.Event()
        self.client_left = asyncio.Event()
        self._resize_buffer = ""
        self._stdin_ended = False
        self._main: asyncio.Task[None] | None = None

    # -- from the client ---------------------------------------------------------------
    def open_stream(self, stream_id: int, headers: spdy.Headers) -> None:
        kind = stream_type(headers)
        if kind not in STREAM_TYPES or kind in self._streams:
            self.refuse(stream_id)
            return
        self.accept(stream_id)
        self._streams[kind] = stream_id
        self._types[stream_id] = kind
        if self._expected <= self._streams.keys():
            self._ready.set()

    def stream_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        kind = self._types.get(stream_id)
        if kind == "resize" and data:
            self._resize(data)
        elif kind == "stdin":
            if data and not self._stdin_ended and self._client is not None:
                self._client.stdin_data(data)
            if fin:
                self._end_stdin()

    def stream_reset(self, stream_id: int) -> None:
        if self._types.get(stream_id) == "stdin":
            self._end_stdin()

    def client_gone(self) -> None:
        if not self.client_left.is_set():
            self.client_left.set()
            if self._client is not None:
                self._client.client_gone()
        super().client_gone()

    def _end_stdin(self) -> None:
        if not self._stdin_ended and self._client is not None:
            self._stdin_ended = True
            self._client.stdin_closed()

    def _resize(self, data: bytes) -> None:
        """Sizes come as consecutive JSON objects (Go's ``json.Encoder``), maybe split."""
        self._resize_buffer += data.decode(errors="replace")
        decoder = json.JSONDecoder()
        while text := self._resize_buffer.lstrip():
            try:
                size, end = decoder.raw_decode(text)
            except ValueError:
                # the rest of a size still to come; not a size at all when that long
                self._resize_buffer = text if len(text) < _RESIZE_BUFFER_LIMIT else ""
                return
            self._resize_buffer = text[end:]
            try:
                columns, rows = int(size["Width"]), int(size["Height"])
            except (KeyError, TypeError, ValueError):
                continue
            if self._client is not None:
                self._client.resize(columns, rows)
            self._sized.set()
        self._resize_buffer = ""

    # -- to the client -----------------------------------------------------------------
    async def send_channel(self, channel: int, data: bytes) -> None:
        """Output of the session on its stream (dropped when the client did not open it)."""
        kind = {STDOUT: "stdout", STDERR: "stderr"}.get(channel)
        stream_id = self._streams.get(kind) if kind else None
        if stream_id is not None and data and not self.client_left.is_set():
            self.put(self.writer.data(stream_id, data))

    async def run(self) -> None:
        self._main = asyncio.ensure_future(self._serve())
        try:
            await super().run()
        finally:
            self._main.cancel()

    async def _serve(self) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), STREAM_CREATION_SECONDS)
        except TimeoutError:
            log.info("timed out waiting for client to create streams")
            self.end()
            return
        if "resize" in self._expected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sized.wait(), FIRST_SIZE_SECONDS)
        try:
            status = await self._work(self.send_channel, self.client_left)
            error_stream = self._streams["error"]
            if status is not None:
                payload = self._protocol.status_payload(status)
                if payload:
                    self.put(self.writer.data(error_stream, payload))
            for stream_id in self._streams.values():
                self.put(self.writer.data(stream_id, fin=True))
        except Exception:
            log.exception("remote command over SPDY failed")
        finally:
            self.end()
