"""``GET/POST .../pods/{name}/portforward``: SPDY tunnelled in a WebSocket (kubectl 1.31+),
raw SPDY after ``Upgrade: SPDY/3.1`` (older kubectl, or ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``;
a POST) and the WebSocket channel protocols of the Python clients (``portforward``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import tornado.websocket

from ...errors import ApiError
from .channels import ChannelProtocol
from .portforward import ChannelForward, PodEndpoint, SpdyForward, parse_ports
from .sockets import StreamSocket, offered_protocols
from .spdy_session import serve_spdy_upgrade
from .targets import find_pod

JSON = dict[str, Any]
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
SPDY_UPGRADE = "spdy/3.1"
PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
_FORWARD_PROTOCOLS = {
    "portforward.k8s.io": ChannelProtocol("portforward.k8s.io", 4),
    "v4.channel.k8s.io": ChannelProtocol("v4.channel.k8s.io", 4),
    "v4.base64.channel.k8s.io": ChannelProtocol("v4.base64.channel.k8s.io", 4, base64=True),
    "base64.channel.k8s.io": ChannelProtocol("base64.channel.k8s.io", 1, base64=True),
}


class PortForwardSocket(StreamSocket):
    """``GET .../pods/{name}/portforward``: SPDY tunnelled (kubectl) or channels (clients)."""

    async def prepare(self) -> None:
        namespace, name = self.path_args[:2]
        pod = find_pod(self.store, namespace, name)
        if not (pod.get("spec") or {}).get("nodeName"):
            raise ApiError.bad_request(f"pod {name} does not have a host assigned")
        uid = str(pod["metadata"].get("uid", ""))
        address = self.runtime.pod_address(uid) if self.runtime is not None else None
        self.endpoint = PodEndpoint(name, uid, address, self._pod_namespace(pod))
        offered = offered_protocols(self.request.headers.get("Sec-WebSocket-Protocol"))
        self.raw_spdy = self.request.headers.get("Upgrade", "").lower() == SPDY_UPGRADE
        self.tunnel = SPDY_TUNNEL in offered
        self.ports: list[int] = []
        if self.raw_spdy:
            return
        if not self.tunnel:
            self.ports = parse_ports(
                self.get_query_arguments("ports") + self.get_query_arguments("port")
            )
            if not self.ports:
                raise ApiError.bad_request('query parameter "port" is required')
        self.require_upgrade()

    def _pod_namespace(self, pod: JSON) -> str | None:
        """The pod's network namespace, known from any of its running local containers (they
        all share it); None when it shares this machine's network or runs none."""
        if self.runtime is None:
            return None
        meta, spec = pod["metadata"], pod.get("spec") or {}
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            running = self.runtime.running_container(
                meta["namespace"], meta["name"], meta.get("uid", ""), container["name"]
            )
            if running is not None:
                return running.context.netns
        return None

    async def get(self, *args: str, **kwargs: str) -> None:
        if self.raw_spdy:
            await self._serve_raw_spdy()
        else:
            await super().get(*args, **kwargs)

    async def post(self, *args: str) -> None:
        """kubectl's SPDY upgrade is a POST (a WebSocket upgrade is always a GET)."""
        if not self.raw_spdy:
            raise ApiError.bad_request("Upgrade request required")
        await self._serve_raw_spdy()

    async def _serve_raw_spdy(self) -> None:
        """Switch the connection to SPDY/3.1 and serve it until either side ends it."""
        endpoint = self.endpoint
        await serve_spdy_upgrade(
            self, self.open_streams, PORT_FORWARD_PROTOCOL, lambda send: SpdyForward(endpoint, send)
        )

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        if self.tunnel:
            return SPDY_TUNNEL
        for name in subprotocols:
            protocol = _FORWARD_PROTOCOLS.get(name.strip())
            if protocol is not None:
                self.protocol = protocol
                return protocol.name
        return None

    def open(self, *args: str) -> None:
        self.forward: SpdyForward | ChannelForward = (
            SpdyForward(self.endpoint, self._send_raw)
            if self.tunnel
            else ChannelForward(self.endpoint, self.ports, self.protocol)
        )
        super().open(*args)

    def on_message(self, message: str | bytes) -> None:
        if isinstance(self.forward, SpdyForward):
            self.forward.feed(message.encode() if isinstance(message, str) else message)
            return
        decoded = self.protocol.decode(message)
        if decoded is not None:
            self.forward.client_data(*decoded)

    def on_close(self) -> None:
        super().on_close()
        self.forward.client_gone()

    async def serve(self) -> None:
        if isinstance(self.forward, SpdyForward):
            await self.forward.run()
        else:
            await self.forward.run(self.send_channel)

    async def _send_raw(self, data: bytes) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            await self.write_message(data, binary=True)
