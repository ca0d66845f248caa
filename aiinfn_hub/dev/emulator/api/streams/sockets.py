"""The WebSocket base of the stream subresources, and ``exec`` and ``attach`` on it.

A request is checked in ``prepare`` (``targets``: the real 404/400 ``Status`` answers), then
upgraded; the session is made as the connection opens (before any message can arrive), runs
on its own task, and the connection is closed with 1000 when it ends (client-go takes any
other close code, or none, for a broken stream).

Exec and attach also answer ``Upgrade: SPDY/3.1`` (kubectl's POST before 1.30, or with
``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``): the version comes from the client's
``X-Stream-Protocol-Version`` values as the kubelet's ``httpstream.Handshake`` picks it, then
``remotecommand`` serves the same session over SPDY streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, NoReturn

import tornado.web
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
    SPDY_PROTOCOLS,
    STDIN,
    ChannelProtocol,
    choose_protocol,
    choose_spdy_protocol,
    parse_resize,
)
from .exec_session import ExecSession, simulated_exec_status
from .open_streams import OpenStreams
from .remotecommand import ChannelSession, SendChannel, SpdyRemoteCommand
from .spdy_session import SendBytes, serve_spdy_upgrade
from .targets import (
    ContainerRuntime,
    StreamOptions,
    StreamTarget,
    resolve_target,
    stream_options,
)

log = logging.getLogger(__name__)
JSON = dict[str, Any]


SPDY_UPGRADE = "spdy/3.1"
STREAM_PROTOCOL_HEADER = "X-Stream-Protocol-Version"


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


class RemoteCommandSocket(StreamSocket):
    """Exec and attach: a WebSocket (GET) or, when the client asks for it, SPDY (a POST from
    kubectl; any method, as the kubelet only looks at the upgrade)."""

    spdy_protocol: ChannelProtocol | None = None
    stream_options: StreamOptions

    def require_stream_upgrade(self) -> None:
        """After the request's checks: negotiate SPDY, or insist on a WebSocket."""
        if self.request.headers.get("Upgrade", "").lower() != SPDY_UPGRADE:
            self.require_upgrade()
            return
        offered = [
            name
            for header in self.request.headers.get_list(STREAM_PROTOCOL_HEADER)
            for name in offered_protocols(header)
        ]
        if not offered:
            self._refuse(400, f"unable to upgrade: {STREAM_PROTOCOL_HEADER} is required")
        self.spdy_protocol = choose_spdy_protocol(offered)
        if self.spdy_protocol is None:
            accepted = [p.name for p in SPDY_PROTOCOLS]
            for name in accepted:
                self.add_header("X-Accepted-Stream-Protocol-Versions", name)
            message = (
                "unable to upgrade: unable to negotiate protocol: client supports "
                f"[{' '.join(offered)}], server accepts [{' '.join(accepted)}]"
            )
            # Handshake answers 403 with the message, then the kubelet's caller writes it
            # again (its own 400 comes too late to change the status)
            self._refuse(403, f"{message}\n{message}")

    def _refuse(self, code: int, message: str) -> NoReturn:
        """A plain-text answer, as the kubelet's handshake writes it (not a ``Status``)."""
        self.set_status(code)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        raise tornado.web.Finish(message + "\n")

    async def get(self, *args: str, **kwargs: str) -> None:
        if self.spdy_protocol is not None:
            await self._serve_spdy(self.spdy_protocol)
        else:
            await super().get(*args, **kwargs)

    async def post(self, *args: str) -> None:
        if self.spdy_protocol is None:
            raise ApiError.bad_request("Upgrade request required")
        await self._serve_spdy(self.spdy_protocol)

    async def _serve_spdy(self, protocol: ChannelProtocol) -> None:
        session = self.make_session()
        self.session = session

        def make(send: SendBytes) -> SpdyRemoteCommand:
            return SpdyRemoteCommand(send, protocol, self.stream_options, session, self.work)

        try:
            await serve_spdy_upgrade(self, self.open_streams, protocol.name, make)
        except Exception:
            log.exception("stream %s failed", self.request.path)

    async def serve(self) -> None:
        status = await self.work(self.send_channel, self.client_left)
        payload = self.protocol.status_payload(status) if status is not None else None
        if payload is not None:
            await self.send_channel(ERROR, payload)

    async def work(self, send: SendChannel, client_left: asyncio.Event) -> JSON | None:
        """Run the session (output through ``send``); its status, None when there is none
        (the client left)."""
        raise NotImplementedError


class ExecSocket(RemoteCommandSocket):
    """``GET .../pods/{name}/exec?command=...``."""

    target: StreamTarget

    async def prepare(self) -> None:
        namespace, name = self.path_args[:2]
        container = self.get_query_argument("container", None)
        self.target = resolve_target(self.store, self.runtime, namespace, name, container)
        self.stream_options = stream_options(self.get_query_arguments, exec_=True)
        self.require_stream_upgrade()

    def make_session(self) -> ExecSession | None:
        target = self.target
        if target.running is None:
            return None
        return ExecSession(target.running, self.stream_options)

    async def work(self, send: SendChannel, client_left: asyncio.Event) -> JSON | None:
        session = self.session
        if isinstance(session, ExecSession):
            return await session.run(send)
        return simulated_exec_status(self.stream_options.command)


class AttachSocket(RemoteCommandSocket):
    """``GET .../pods/{name}/attach``: the main process's output (and stdin if it has one)."""

    target: StreamTarget

    async def prepare(self) -> None:
        namespace, name = self.path_args[:2]
        container = self.get_query_argument("container", None)
        self.target = resolve_target(self.store, self.runtime, namespace, name, container)
        self.stream_options = stream_options(self.get_query_arguments, exec_=False)
        self.require_stream_upgrade()

    def make_session(self) -> AttachSession | None:
        target = self.target
        if target.running is None:
            return None
        return AttachSession(target.running, target.container, self.stream_options)

    async def work(self, send: SendChannel, client_left: asyncio.Event) -> JSON | None:
        session = self.session
        if not isinstance(session, AttachSession):
            # a simulated container writes nothing more: attached until the client leaves
            await client_left.wait()
            return None
        return await session.run(send)
