"""The WebSocket base of the stream subresources, and ``exec`` and ``attach`` on it.

A request is checked in ``prepare`` (``targets``: the real 404/400 ``Status`` answers), then
upgraded; the session is made as the connection opens (before any message can arrive), runs
on its own task, and the connection is closed with 1000 when it ends (client-go takes any
other close code, or none, for a broken stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import tornado.websocket

from ...errors import ApiError
from ...store import Store
from ..faults import Faults
from ..handlers import EmulatorHandler
from .attach_session import AttachSession
from .channels import (
    CLOSE_SIGNAL,
    DEFAULT_PROTOCOL,
    ERROR,
    RESIZE,
    STDIN,
    choose_protocol,
    parse_resize,
)
from .exec_session import ExecSession, simulated_exec_status
from .open_streams import OpenStreams
from .targets import ContainerRuntime, StreamTarget, resolve_target, stream_options

log = logging.getLogger(__name__)


class ChannelSession(Protocol):
    """What exec and attach sessions take from the client's channels."""

    def stdin_data(self, data: bytes) -> None: ...
    def stdin_closed(self) -> None: ...
    def resize(self, columns: int, rows: int) -> None: ...
    def client_gone(self) -> None: ...


def offered_protocols(header: str | None) -> list[str]:
    return [p.strip() for p in (header or "").split(",") if p.strip()]


class StreamSocket(tornado.websocket.WebSocketHandler, EmulatorHandler):
    """A checked request upgraded to a WebSocket; channel messages go to ``self.session``."""

    def initialize(  # type: ignore[override]
        self,
        store: Store,
        faults: Faults,
        validate: bool,
        runtime: ContainerRuntime | None,
        open_streams: OpenStreams,
    ) -> None:
        EmulatorHandler.initialize(self, store, faults, validate)
        self.runtime = runtime
        self.open_streams = open_streams
        self.protocol = DEFAULT_PROTOCOL
        self.session: ChannelSession | None = None
        self.client_left = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def check_origin(self, origin: str) -> bool:
        """Any origin: the bearer token (which browsers cannot add to a WebSocket) guards."""
        return True

    def require_upgrade(self) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError.bad_request("Upgrade request required")

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        chosen = choose_protocol(subprotocols)
        if chosen is not None:
            self.protocol = chosen
            return chosen.name
        return None

    async def send_channel(self, channel: int, data: bytes) -> None:
        """One message to the client; nothing once it has gone."""
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        message = self.protocol.encode(channel, data)
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            await self.write_message(message, binary=not self.protocol.base64)

    def open(self, *args: str) -> None:
        # the session exists before the first message can arrive
        self.session = self.make_session()
        self._task = asyncio.ensure_future(self._serve())
        self.open_streams.track(self._task, lambda: self.close(1001, "the API server is stopping"))

    def make_session(self) -> ChannelSession | None:
        """The session fed by this connection's messages (None: messages are dropped)."""
        return None

    async def _serve(self) -> None:
        try:
            await self.serve()
        except Exception:
            log.exception("stream %s failed", self.request.path)
        finally:
            # 1000: client-go takes any other close code (even none) for a broken stream
            self.close(1000)

    async def serve(self) -> None:
        raise NotImplementedError

    def on_message(self, message: str | bytes) -> None:
        decoded = self.protocol.decode(message)
        if decoded is None or self.session is None:
            return
        channel, payload = decoded
        if channel == STDIN:
            self.session.stdin_data(payload)
        elif channel == RESIZE and self.protocol.version >= 3:
            size = parse_resize(payload)
            if size is not None:
                self.session.resize(*size)
        elif channel == CLOSE_SIGNAL and self.protocol.close_signal and payload[:1] == b"\x00":
            self.session.stdin_closed()

    def on_close(self) -> None:
        self.client_left.set()
        if self.session is not None:
            self.session.client_gone()


class ExecSocket(StreamSocket):
    """``GET .../pods/{name}/exec?command=...``."""

    target: StreamTarget

    async def prepare(self) -> None:
        namespace, name = self.path_args[:2]
        container = self.get_query_argument("container", None)
        self.target = resolve_target(self.store, self.runtime, namespace, name, container)
        self.stream_options = stream_options(self.get_query_arguments, exec_=True)
        self.require_upgrade()

    def make_session(self) -> ExecSession | None:
        target = self.target
        if target.running is None:
            return None
        return ExecSession(target.running, self.stream_options)

    async def serve(self) -> None:
        session = self.session
        if isinstance(session, ExecSession):
            status = await session.run(self.send_channel)
        else:
            status = simulated_exec_status(self.stream_options.command)
        payload = self.protocol.status_payload(status)
        if payload is not None:
            await self.send_channel(ERROR, payload)


class AttachSocket(StreamSocket):
    """``GET .../pods/{name}/attach``: the main process's output (and stdin if it has one)."""

    target: StreamTarget

    async def prepare(self) -> None:
        namespace, name = self.path_args[:2]
        container = self.get_query_argument("container", None)
        self.target = resolve_target(self.store, self.runtime, namespace, name, container)
        self.stream_options = stream_options(self.get_query_arguments, exec_=False)
        self.require_upgrade()

    def make_session(self) -> AttachSession | None:
        target = self.target
        if target.running is None:
            return None
        return AttachSession(target.running, target.container, self.stream_options)

    async def serve(self) -> None:
        session = self.session
        if not isinstance(session, AttachSession):
            # a simulated container writes nothing more: attached until the client leaves
            await self.client_left.wait()
            return
        status = await session.run(self.send_channel)
        payload = self.protocol.status_payload(status)
        if payload is not None:
            await self.send_channel(ERROR, payload)
