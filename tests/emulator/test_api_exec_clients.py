"""``pods/exec`` with the Python clients: kubernetes_asyncio's ``WsApiClient`` (it asks for
``v4.channel.k8s.io``) and the official client's ``kubernetes.stream.stream`` (it offers
``v5.channel.k8s.io`` then v4), checked down to the channel bytes and the ``Status`` JSON of
the error channel.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from stream_fixtures import StreamCluster, simulated_pod, streams, web_pod

__all__ = ["streams"]


@pytest.fixture(scope="module")
def web(streams: StreamCluster) -> Iterator[StreamCluster]:
    streams.create(web_pod("web"))
    streams.serving("web")
    yield streams


# -- kubernetes_asyncio ---------------------------------------------------------------------
async def _asyncio_exec(
    cluster: StreamCluster, pod: str, command: list[str], stdin: bytes | None = None
) -> tuple[str, dict[int, bytes], Any]:
    """(negotiated protocol, bytes per channel, the error channel's JSON)."""
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.stream import WsApiClient

    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
    channels: dict[int, bytes] = {}
    async with WsApiClient(configuration=cfg) as ws_api:
        api = client.CoreV1Api(api_client=ws_api)
        connection = await api.connect_get_namespaced_pod_exec(
            pod,
            "default",
            command=command,
            stderr=True,
            stdout=True,
            stdin=stdin is not None,
            tty=False,
            _preload_content=False,
        )
        async with connection as ws:
            if stdin is not None:
                await ws.send_bytes(b"\x00" + stdin)
            async for message in ws:
                data = message.data if isinstance(message.data, bytes) else message.data.encode()
                channels[data[0]] = channels.get(data[0], b"") + data[1:]
            protocol = ws.protocol or ws._response.headers.get("Sec-WebSocket-Protocol")
    status = json.loads(channels[3]) if 3 in channels else None
    return protocol, channels, status


async def test_asyncio_client_separates_streams_and_reports_success(web: StreamCluster) -> None:
    protocol, channels, status = await _asyncio_exec(
        web, "web", ["sh", "-c", "echo out; echo err >&2; echo $GREETING; pwd"]
    )
    assert protocol == "v4.channel.k8s.io"
    assert channels[1].decode().splitlines()[:2] == ["out", "hello"]
    assert channels[1].decode().splitlines()[2].endswith("/root/srv/work")
    assert channels[2] == b"err\n"
    assert status == {"metadata": {}, "status": "Success"}


async def test_asyncio_client_reads_the_exit_code_from_the_status(web: StreamCluster) -> None:
    from kubernetes_asyncio.stream import WsApiClient

    _, _, status = await _asyncio_exec(web, "web", ["sh", "-c", "exit 42"])
    assert status == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        "[sh -c exit 42], exit code 42",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "42"}]},
    }
    assert WsApiClient.parse_error_data(json.dumps(status)) == 42


async def test_asyncio_client_stdin_reaches_the_command(web: StreamCluster) -> None:
    # v4 has no way to close stdin: the command reads a known length
    _, channels, status = await _asyncio_exec(
        web, "web", ["head", "-c", "11"], stdin=b"hello stdin and more"
    )
    assert channels[1] == b"hello stdin"
    assert status["status"] == "Success"


async def test_asyncio_client_simulated_pod_gets_the_runtime_failure(
    streams: StreamCluster,
) -> None:
    streams.create(simulated_pod("sim-async"))
    await asyncio.to_thread(streams.running, "sim-async")
    _, channels, status = await _asyncio_exec(streams, "sim-async", ["ls", "/"])
    assert 1 not in channels
    assert status["reason"] == "InternalError" and status["code"] == 500
    assert status["message"].endswith('exec: "ls": executable file not found in $PATH: unknown')


async def test_asyncio_client_sees_the_404_of_a_missing_pod(streams: StreamCluster) -> None:
    import aiohttp

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _asyncio_exec(streams, "absent", ["true"])
    assert refused.value.status == 404


# -- the official client ----------------------------------------------------------------------
def _core_api(cluster: StreamCluster) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
    return client.CoreV1Api(client.ApiClient(configuration=cfg))


def test_sync_client_stream_with_stdin_close_and_exit_code(web: StreamCluster) -> None:
    from kubernetes.stream import stream

    api = _core_api(web)
    resp = stream(
        api.connect_get_namespaced_pod_exec,
        "web",
        "default",
        command=["sh", "-c", "cat; echo done >&2; exit 3"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    assert resp.subprotocol == "v5.channel.k8s.io"
    resp.write_stdin("echo through cat\n")
    resp.close_channel(0)  # v5: stdin EOF, so cat ends
    resp.run_forever(timeout=20)
    assert resp.read_stdout() == "echo through cat\n"
    assert resp.read_stderr() == "done\n"
    assert resp.returncode == 3


def test_sync_client_stream_preloaded_output(web: StreamCluster) -> None:
    from kubernetes.stream import stream

    api = _core_api(web)
    output = stream(
        api.connect_get_namespaced_pod_exec,
        "web",
        "default",
        command=["sh", "-c", "echo $POD_NAME; cat /data/main.txt"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert output == "web\nfrom-main\n"


def test_sync_client_sees_the_400_of_an_ambiguous_container(streams: StreamCluster) -> None:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream

    streams.create(simulated_pod("duo", containers=2))
    streams.running("duo")
    api = _core_api(streams)
    with pytest.raises(ApiException) as refused:
        stream(
            api.connect_get_namespaced_pod_exec,
            "duo",
            "default",
            command=["true"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
    assert "400" in str(refused.value)
