"""The routes of ``pods/exec``, ``pods/attach`` and ``pods/portforward``.

Each request is checked before the upgrade (``targets``: the real 404/400 ``Status``
answers), then upgraded and handed to a session (``sockets``, ``portforward_socket``). The
application's token check has already run (it runs before routing), so only the emulator's
clients get here.

Exec and attach speak WebSocket (what kubectl 1.30+ tries first and the Python clients speak)
and SPDY (``remotecommand``: kubectl before 1.30, or told to with
``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``, or after a failed WebSocket upgrade), with the
version negotiated from ``X-Stream-Protocol-Version`` (v4 down to ``channel.k8s.io``). Port-
forward speaks SPDY, because kubectl has nothing else for it: tunnelled in a WebSocket
(``SPDY/3.1+portforward.k8s.io``, kubectl 1.31+) or raw (``Upgrade: SPDY/3.1``), and the
channel protocols of the Python clients.
"""

from __future__ import annotations

from typing import Any

from .open_streams import OpenStreams
from .portforward_socket import PortForwardSocket
from .sockets import AttachSocket, ExecSocket
from .targets import ContainerRuntime

STREAM_PATH = r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/"


def stream_routes(
    args: dict[str, Any], runtime: ContainerRuntime | None, open_streams: OpenStreams
) -> list[Any]:
    """The three routes, to put before the generic resource route."""
    stream_args = {**args, "runtime": runtime, "open_streams": open_streams}
    return [
        (STREAM_PATH + "exec", ExecSocket, stream_args),
        (STREAM_PATH + "attach", AttachSocket, stream_args),
        (STREAM_PATH + "portforward", PortForwardSocket, stream_args),
    ]
