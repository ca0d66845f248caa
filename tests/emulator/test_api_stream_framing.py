"""The stream protocols byte by byte: ``*.channel.k8s.io`` framing and SPDY/3.1 sessions.

The SPDY session is driven in-process by a hand-built client (the frames kubectl's
spdystream sends) against a TCP server on this machine; the base64 channel protocol, which
no client at hand speaks, is checked over a real WebSocket to the emulator.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib
from collections.abc import Callable

import tornado.httpclient
import tornado.websocket
from stream_fixtures import NS, StreamCluster, process_pod, streams

from aiinfn_hub.dev.emulator.api.streams import spdy
from aiinfn_hub.dev.emulator.api.streams.channels import (
    choose_protocol,
    exit_code_status,
    parse_resize,
    success_status,
)
from aiinfn_hub.dev.emulator.api.streams.portforward import PodEndpoint, SpdyForward
from aiinfn_hub.dev.emulator.api.streams.spdy_dictionary import HEADER_DICTIONARY

__all__ = ["streams"]


# -- channels ---------------------------------------------------------------------------------
def test_the_client_order_picks_the_protocol() -> None:
    chosen = choose_protocol(["v5.channel.k8s.io", "v4.channel.k8s.io"])
    assert chosen is not None and chosen.name == "v5.channel.k8s.io" and chosen.close_signal
    chosen = choose_protocol(["x.unknown", "base64.channel.k8s.io", "v4.channel.k8s.io"])
    assert chosen is not None and chosen.base64 and chosen.version == 1
    assert choose_protocol(["SPDY/3.1+portforward.k8s.io"]) is None


def test_status_on_the_error_channel_per_version() -> None:
    v4, v1 = choose_protocol(["v4.channel.k8s.io"]), choose_protocol(["channel.k8s.io"])
    assert v4 is not None and v1 is not None
    failure = exit_code_status(["sh", "-c", "exit 2"], 2)
    assert json.loads(v4.status_payload(failure) or b"") == failure
    assert v4.status_payload(success_status()) == b'{"metadata":{},"status":"Success"}'
    assert v1.status_payload(success_status()) is None  # v1 says nothing on success
    assert v1.status_payload(failure) == failure["message"].encode()


def test_base64_framing_and_resize_messages() -> None:
    protocol = choose_protocol(["v4.base64.channel.k8s.io"])
    assert protocol is not None
    assert protocol.encode(1, b"hi\n") == "1aGkK"
    assert protocol.decode("0" + base64.b64encode(b"in").decode()) == (0, b"in")
    assert protocol.decode("x") is None
    assert parse_resize(b'{"Width":120,"Height":40}') == (120, 40)
    assert parse_resize(b"not json") is None


async def test_base64_protocol_over_a_real_websocket(streams: StreamCluster) -> None:
    streams.create(
        process_pod("b64", [{"name": "main", "image": "x", "command": ["sleep", "600"]}])
    )
    await asyncio.to_thread(streams.running, "b64")
    url = streams.raw.base_url.replace("https", "wss")
    request = tornado.httpclient.HTTPRequest(
        f"{url}{NS}/pods/b64/exec?command=sh&command=-c&command=echo+hi;+exit+2&stdout=1",
        headers=dict(streams.raw.auth_headers),
        ssl_options=streams.raw.context,
    )
    connection = await tornado.websocket.websocket_connect(
        request, subprotocols=["base64.channel.k8s.io"]
    )
    assert connection.selected_subprotocol == "base64.channel.k8s.io"
    messages = []
    while (message := await connection.read_message()) is not None:
        messages.append(message)
    assert messages[0] == "1" + base64.b64encode(b"hi\n").decode()
    assert messages[-1][0] == "3"
    assert base64.b64decode(messages[-1][1:]).decode() == (
        "command terminated with non-zero exit code: error executing command "
        "[sh -c echo hi; exit 2], exit code 2"
    )


# -- SPDY -------------------------------------------------------------------------------------
class SpdyClient:
    """The frames spdystream (kubectl) sends, built by hand, and a reader for the replies."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zdict=HEADER_DICTIONARY)
        self.reader = spdy.FrameReader()

    def syn_stream(self, stream_id: int, headers: dict[str, str]) -> bytes:
        block = struct.pack(">I", len(headers))
        for name, value in headers.items():
            for part in (name.encode(), value.encode()):
                block += struct.pack(">I", len(part)) + part
        compressed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + compressed
        return struct.pack(">II", 0x80030001, len(payload)) + payload

    @staticmethod
    def data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id, (int(fin) << 24) | len(data)) + data

    @staticmethod
    def ping(ping_id: int) -> bytes:
        return struct.pack(">III", 0x80030006, 4, ping_id)


async def _upper_case_server() -> tuple[asyncio.Server, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.read()).upper())  # until the client half-closes
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_spdy_session_forwards_one_connection_and_half_closes() -> None:
    server, port = await _upper_case_server()
    sent: asyncio.Queue[bytes] = asyncio.Queue()
    session = SpdyForward(PodEndpoint("p", "uid-1", "127.0.0.1"), sent.put)
    runner = asyncio.ensure_future(session.run())
    client = SpdyClient()
    frames: list[spdy.Frame] = []

    async def until(check: Callable[[spdy.Frame], bool]) -> None:
        while not any(check(f) for f in frames):
            frames.extend(client.reader.feed(await asyncio.wait_for(sent.get(), 5)))

    wire = (
        client.syn_stream(1, {"streamtype": "error", "port": str(port), "requestid": "0"})
        + client.syn_stream(3, {"streamtype": "data", "port": str(port), "requestid": "0"})
        + client.data(3, b"through spdy")
        + client.data(3, b"", fin=True)
        + client.ping(7)
    )
    for i in range(len(wire)):  # frames split anywhere, as transport messages may split them
        session.feed(wire[i : i + 1])
    await until(lambda f: f.kind == 0 and f.stream_id == 1 and f.fin)
    session.client_gone()
    await runner
    server.close()
    replies = [f.stream_id for f in frames if f.kind == spdy.SYN_REPLY]
    assert replies == [1, 3]
    assert any(f.kind == spdy.PING and f.value == 7 for f in frames)
    data = b"".join(f.data for f in frames if f.kind == 0 and f.stream_id == 3)
    assert data == b"THROUGH SPDY"
    assert [f.fin for f in frames if f.kind == 0 and f.stream_id == 1] == [True]  # no error


async def test_spdy_session_reports_a_refused_port_on_the_error_stream() -> None:
    server, port = await _upper_case_server()
    server.close()
    await server.wait_closed()  # nothing listens there any more
    sent: asyncio.Queue[bytes] = asyncio.Queue()
    session = SpdyForward(PodEndpoint("p", "uid-1", "127.0.0.1"), sent.put)
    runner = asyncio.ensure_future(session.run())
    client = SpdyClient()
    session.feed(client.syn_stream(1, {"streamtype": "error", "port": str(port), "requestid": "5"}))
    session.feed(client.syn_stream(3, {"streamtype": "data", "port": str(port), "requestid": "5"}))
    frames: list[spdy.Frame] = []
    while not any(f.kind == 0 and f.stream_id == 3 and f.fin for f in frames):
        frames.extend(client.reader.feed(await asyncio.wait_for(sent.get(), 5)))
    session.client_gone()
    await runner
    error = b"".join(f.data for f in frames if f.kind == 0 and f.stream_id == 1).decode()
    assert error.startswith(f"error forwarding port {port} to pod ")
    assert error.endswith(f"dial tcp4 127.0.0.1:{port}: connect: connection refused")


async def test_spdy_session_refuses_a_stream_without_a_type() -> None:
    sent: asyncio.Queue[bytes] = asyncio.Queue()
    session = SpdyForward(PodEndpoint("p", "uid-1", None), sent.put)
    runner = asyncio.ensure_future(session.run())
    session.feed(SpdyClient().syn_stream(1, {"port": "80"}))
    frames = spdy.FrameReader().feed(await asyncio.wait_for(sent.get(), 5))
    session.client_gone()
    await runner
    assert [(f.kind, f.stream_id, f.value) for f in frames] == [
        (spdy.RST_STREAM, 1, spdy.RST_PROTOCOL_ERROR)
    ]
