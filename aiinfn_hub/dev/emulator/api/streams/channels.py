"""The ``*.channel.k8s.io`` protocols of exec and attach (WebSocket channels, SPDY streams).

Every message carries one channel: 0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize
(``{"Width": w, "Height": h}``). In the binary protocols the first byte is the channel; in the
base64 ones the first character is the channel digit and the rest is base64. What changed
between versions, as kube-apiserver speaks them:

- ``channel.k8s.io`` (v1), ``v2``: the error channel carries the failure message as text;
- ``v3``: adds the resize channel;
- ``v4``: the error channel carries a ``Status`` JSON, ``Success`` included (exit codes);
- ``v5``: adds the close signal ``[255, channel]`` (the client half-closes stdin).

Over SPDY (``remotecommand``) each channel is a stream of its own, named by its
``streamType``; v4 is the newest there (v5 and base64 are WebSocket only).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255


@dataclass(frozen=True)
class ChannelProtocol:
    """One negotiated subprotocol and what it supports."""

    name: str
    version: int
    base64: bool = False

    @property
    def status_json(self) -> bool:
        """v4+: a ``Status`` object on the error channel, success included."""
        return self.version >= 4

    @property
    def close_signal(self) -> bool:
        return self.version >= 5

    def encode(self, channel: int, data: bytes) -> bytes | str:
        """One message for ``channel`` (bytes for binary protocols, text for base64)."""
        if self.base64:
            return str(channel) + base64.b64encode(data).decode()
        return bytes([channel]) + data

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        """``(channel, payload)`` of a client message; None for an empty or garbled one."""
        if self.base64:
            text = message.decode() if isinstance(message, bytes) else message
            if not text or not text[0].isdigit():
                return None
            try:
                return int(text[0]), base64.b64decode(text[1:])
            except ValueError:
                return None
        data = message.encode() if isinstance(message, str) else message
        if not data:
            return None
        return data[0], data[1:]

    def status_payload(self, status: dict[str, Any]) -> bytes | None:
        """What the error channel carries for ``status``: the JSON (v4+) or, before v4, the
        message of a failure and nothing for a success."""
        if self.status_json:
            return json.dumps(status, separators=(",", ":")).encode()
        if status.get("status") == "Success":
            return None
        return str(status.get("message", "")).encode()


# client order decides among these (kube-apiserver picks the first it supports)
_PROTOCOLS = {
    p.name: p
    for p in (
        ChannelProtocol("v5.channel.k8s.io", 5),
        ChannelProtocol("v4.channel.k8s.io", 4),
        ChannelProtocol("v4.base64.channel.k8s.io", 4, base64=True),
        ChannelProtocol("v3.channel.k8s.io", 3),
        ChannelProtocol("v2.channel.k8s.io", 2),
        ChannelProtocol("channel.k8s.io", 1),
        ChannelProtocol("base64.channel.k8s.io", 1, base64=True),
    )
}
# a client that asks for no subprotocol gets the original binary one
DEFAULT_PROTOCOL = _PROTOCOLS["channel.k8s.io"]


# what the kubelet speaks over SPDY, its order (v5 and base64 exist only over WebSocket)
SPDY_PROTOCOLS = tuple(
    _PROTOCOLS[name]
    for name in ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
)


def choose_spdy_protocol(offered: list[str]) -> ChannelProtocol | None:
    """The first ``X-Stream-Protocol-Version`` the client offers that the kubelet speaks over
    SPDY (client order, as ``httpstream.Handshake`` negotiates); None if none."""
    supported = {p.name: p for p in SPDY_PROTOCOLS}
    for name in offered:
        protocol = supported.get(name.strip())
        if protocol is not None:
            return protocol
    return None


def choose_protocol(offered: list[str]) -> ChannelProtocol | None:
    """The first subprotocol the client offers that we speak; None if it offers only others."""
    for name in offered:
        protocol = _PROTOCOLS.get(name.strip())
        if protocol is not None:
            return protocol
    return None


def success_status() -> dict[str, Any]:
    """What kubelet's remotecommand writes when the command exited 0."""
    return {"metadata": {}, "status": "Success"}


def exit_code_status(command: list[str], code: int) -> dict[str, Any]:
    """A non-zero exit, worded as containerd + kubelet report it (``kubectl`` turns the
    ``ExitCode`` cause into its own exit status)."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(detail: str) -> dict[str, Any]:
    """An error of the runtime itself (the command could not start): ``InternalError``."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {detail}",
        "reason": "InternalError",
        "details": {"causes": [{"message": detail}]},
        "code": 500,
    }


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """``(columns, rows)`` of a resize message; None when it is not one."""
    try:
        size = json.loads(payload)
        return int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None
