"""``pods/portforward``: TCP connections to a pod's own address, carried two ways.

- WebSocket channels (``v4.channel.k8s.io``, ``portforward.k8s.io``, base64 variants), what
  the Python clients speak: the ports come in the query; port i has data channel 2i and
  error channel 2i+1, each opened by the server with the port number (2 bytes, little
  endian); one TCP connection per port for the life of the WebSocket.
- SPDY (``spdy``), what kubectl speaks: per local connection the client opens an error and a
  data stream (headers ``streamtype``, ``port``, ``requestid``); once both are there the
  server connects to the pod and pumps data, reports a failure on the error stream, then
  half-closes both streams, which kubectl waits for.

Connections go only to the pod IP the kubelet gave the pod (never to a host or port named by
the client or by a writable status field) or, for a pod with a network namespace of its own,
to ``localhost`` inside that namespace, as containerd dials (so a server bound to the pod's
127.0.0.1 only is reached). Refusals are worded like the kubelet's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ...controllers.netns import open_connection_in
from ...errors import ApiError
from . import spdy
from .channels import ChannelProtocol
from .spdy_session import SendBytes, SpdySession, stream_type

_CHUNK = 64 * 1024
_CONNECT_SECONDS = 5.0
SendChannel = Callable[[int, bytes], Awaitable[None]]


def parse_ports(values: list[str]) -> list[int]:
    """``ports``/``port`` query values (repeated or comma-separated), 400 when invalid."""
    ports = []
    for value in values:
        for text in value.split(","):
            text = text.strip()
            try:
                port = int(text)
            except ValueError:
                raise ApiError.bad_request(
                    f'unable to parse "{text}" as a port: strconv.ParseUint: parsing "{text}": '
                    "invalid syntax"
                ) from None
            if not 0 < port < 65536:
                raise ApiError.bad_request(f'port "{port}" must be > 0 and < 65536')
            ports.append(port)
    return ports


@dataclass(frozen=True)
class PodEndpoint:
    """Where a pod's ports are: its kubelet-assigned IP (None: no sandbox here to reach) and
    its network namespace (None: it shares this machine's network)."""

    name: str
    uid: str
    address: str | None
    netns: str | None = None

    @property
    def _dialed(self) -> str:
        return "127.0.0.1" if self.netns is not None else self.address or "127.0.0.1"

    def failure(self, port: int, reason: str) -> str:
        """The kubelet's (and containerd's) words for a port it could not reach."""
        sandbox = hashlib.sha256(self.uid.encode()).hexdigest()
        return (
            f"error forwarding port {port} to pod {sandbox}, uid : failed to connect to "
            f'localhost:{port} inside namespace "{sandbox}", IPv4: dial tcp4 '
            f"{self._dialed}:{port}: connect: {reason}"
        )

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``port`` of the pod; ConnectionError with the message to
        report when it cannot be made."""
        if self.address is None:
            raise ConnectionError(self.failure(port, "connection refused"))
        try:
            if self.netns is not None:
                return await open_connection_in(self.netns, "127.0.0.1", port, _CONNECT_SECONDS)
            return await asyncio.wait_for(
                asyncio.open_connection(self.address, port), _CONNECT_SECONDS
            )
        except TimeoutError:
            raise ConnectionError(self.failure(port, "i/o timeout")) from None
        except OSError as exc:
            # asyncio words a refusal "Connect call failed (...)"; Go says "connection refused"
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConnectionError(self.failure(port, reason.lower())) from None


async def _pump(reader: asyncio.StreamReader, send: SendBytes) -> None:
    while data := await reader.read(_CHUNK):
        await send(data)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


class ChannelForward:
    """Port-forwarding over WebSocket channels; ``run`` ends when every port is done."""

    def __init__(self, endpoint: PodEndpoint, ports: list[int], protocol: ChannelProtocol) -> None:
        self._endpoint = endpoint
        self._ports = ports
        self._protocol = protocol
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._pending: dict[int, list[bytes]] = {}

    def client_data(self, channel: int, data: bytes) -> None:
        """Data for the port of an even channel (odd channels carry nothing from clients)."""
        if channel % 2 or channel // 2 >= len(self._ports) or not data:
            return
        index = channel // 2
        writer = self._writers.get(index)
        if writer is None:
            self._pending.setdefault(index, []).append(data)
        elif not writer.is_closing():
            writer.write(data)

    def client_gone(self) -> None:
        for writer in self._writers.values():
            _close(writer)

    async def run(self, send: SendChannel) -> None:
        for index, port in enumerate(self._ports):
            prefix = port.to_bytes(2, "little")
            await send(2 * index, prefix)
            await send(2 * index + 1, prefix)
        await asyncio.gather(*(self._forward(i, p, send) for i, p in enumerate(self._ports)))

    async def _forward(self, index: int, port: int, send: SendChannel) -> None:
        try:
            reader, writer = await self._endpoint.connect(port)
        except ConnectionError as exc:
            await send(2 * index + 1, str(exc).encode())
            return
        self._writers[index] = writer
        for data in self._pending.pop(index, []):
            writer.write(data)
        try:

            async def to_client(data: bytes) -> None:
                await send(2 * index, data)

            await _pump(reader, to_client)
        except OSError as exc:
            await send(2 * index + 1, self._endpoint.failure(port, str(exc)).encode())
        finally:
            _close(writer)


@dataclass
class _Pair:
    """The two streams of one forwarded connection (kubelet's ``httpStreamPair``)."""

    port: int
    data: int | None = None
    error: int | None = None
    writer: asyncio.StreamWriter | None = None
    waiting: list[bytes] = field(default_factory=list)
    data_ended: bool = False


class SpdyForward(SpdySession):
    """Port-forwarding over SPDY; bytes from the client go to ``feed``, bytes to the client
    leave through ``send`` in order. ``run`` ends when the client goes away."""

    def __init__(self, endpoint: PodEndpoint, send: SendBytes) -> None:
        super().__init__(send)
        self._endpoint = endpoint
        self._pairs: dict[str, _Pair] = {}
        self._by_stream: dict[int, _Pair] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def finish(self) -> None:
        for task in self._tasks:
            task.cancel()
        for pair in self._pairs.values():
            _close(pair.writer)

    # -- frames from the client ----------------------------------------------------------
    def stream_reset(self, stream_id: int) -> None:
        pair = self._by_stream.get(stream_id)
        if pair is not None:
            _close(pair.writer)

    def open_stream(self, stream_id: int, headers: spdy.Headers) -> None:
        kind = stream_type(headers)
        try:
            port = int((headers.get("port") or [""])[0])
        except ValueError:
            port = 0
        if kind not in ("data", "error") or not 0 < port < 65536:
            self.refuse(stream_id)
            return
        self.accept(stream_id)
        request = (headers.get("requestid") or [""])[0]
        pair = self._pairs.setdefault(request, _Pair(port))
        setattr(pair, kind, stream_id)
        self._by_stream[stream_id] = pair
        if pair.data is not None and pair.error is not None:
            task = asyncio.ensure_future(self._forward(request, pair))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def stream_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        pair = self._by_stream.get(stream_id)
        if pair is None or stream_id != pair.data:
            return  # the error stream carries nothing from the client
        if pair.writer is None:
            if data:
                pair.waiting.append(data)
            pair.data_ended = pair.data_ended or fin
            return
        with contextlib.suppress(OSError, RuntimeError):
            if data:
                pair.writer.write(data)
            if fin and pair.writer.can_write_eof():
                pair.writer.write_eof()

    # -- one forwarded connection --------------------------------------------------------
    async def _forward(self, request: str, pair: _Pair) -> None:
        assert pair.data is not None and pair.error is not None
        data_stream, error_stream = pair.data, pair.error
        try:
            reader, writer = await self._endpoint.connect(pair.port)
        except ConnectionError as exc:
            self.put(self.writer.data(error_stream, str(exc).encode()))
        else:
            pair.writer = writer
            with contextlib.suppress(OSError, RuntimeError):
                for data in pair.waiting:
                    writer.write(data)
                if pair.data_ended and writer.can_write_eof():
                    writer.write_eof()
            pair.waiting.clear()

            async def to_client(data: bytes) -> None:
                self.put(self.writer.data(data_stream, data))

            try:
                await _pump(reader, to_client)
            except OSError as exc:
                message = self._endpoint.failure(pair.port, str(exc))
                self.put(self.writer.data(error_stream, message.encode()))
            finally:
                _close(writer)
        self.put(self.writer.data(data_stream, fin=True))
        self.put(self.writer.data(error_stream, fin=True))
        self._pairs.pop(request, None)
        self._by_stream.pop(data_stream, None)
        self._by_stream.pop(error_stream, None)
