"""``pods/portforward``: kubectl 1.32 (SPDY tunnelled in a WebSocket) and the official Python
client (``v4.channel.k8s.io`` channels), with real HTTP requests through the forwarded port.

Connections go to the pod's own IP only: a service listening on the host's 127.0.0.1 on the
same port is never reached.
"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from stream_fixtures import NS, PY, StreamCluster, needs_kubectl, process_pod, streams, web_pod

__all__ = ["streams"]

ECHO_SERVER = """
import os, socketserver
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)
socketserver.ThreadingTCPServer((os.environ["POD_IP"], 7000), Echo).serve_forever()
"""


@pytest.fixture(scope="module")
def web(streams: StreamCluster) -> Iterator[StreamCluster]:
    streams.create(web_pod("web"))
    streams.create(
        process_pod(
            "echo",
            [
                {
                    "name": "echo",
                    "image": "x",
                    "command": [PY, "-c", ECHO_SERVER],
                    "env": [
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        }
                    ],
                }
            ],
        )
    )
    streams.serving("web")
    streams.serving("echo", 7000)
    yield streams


def _forwarded_port(process: subprocess.Popen[bytes]) -> int:
    """The local port kubectl reports it listens on (its first line)."""
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+", line)
    assert match, line
    return int(match.group(1))


def _stop(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    if process.poll() is None:
        process.terminate()
    return process.communicate(timeout=15)


@needs_kubectl
def test_kubectl_port_forward_carries_http_requests(web: StreamCluster) -> None:
    forward = web.kubectl_popen("port-forward", "pod/web", ":8888")
    try:
        port = _forwarded_port(forward)
        for _ in range(3):  # one SPDY stream pair per connection, on one tunnel
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                assert response.status == 200
                assert b"Directory listing" in response.read()
        # a file made in the container, larger than a frame or a WebSocket message
        made = web.kubectl(
            "exec", "web", "--", "sh", "-c", "head -c 3000000 /dev/urandom > big; sha256sum big"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/big", timeout=10) as response:
            digest = hashlib.sha256(response.read()).hexdigest()
        assert made.stdout.split()[0].decode() == digest
    finally:
        out, err = _stop(forward)
    assert out.count(b"Handling connection for") == 4, err


@needs_kubectl
def test_kubectl_port_forward_with_a_fixed_local_port(web: StreamCluster) -> None:
    with socket.socket() as probe:  # a free local port for "LOCAL:8888"
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    forward = web.kubectl_popen("port-forward", "pod/echo", f"{local}:7000")
    try:
        assert _forwarded_port(forward) == local
        sent = bytes(range(256)) * 4096  # 1 MiB each way
        with socket.create_connection(("127.0.0.1", local), timeout=10) as connection:
            connection.sendall(sent)
            connection.shutdown(socket.SHUT_WR)  # half-close: the echo server sees EOF
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
        assert received == sent
    finally:
        _stop(forward)


@needs_kubectl
def test_kubectl_port_forward_over_raw_spdy(web: StreamCluster) -> None:
    # what kubectl before 1.31 speaks, and 1.32 with its WebSocket tunnel switched off
    forward = web.kubectl_popen(
        "port-forward", "pod/echo", ":7000", "-v=6", KUBECTL_PORT_FORWARD_WEBSOCKETS="false"
    )
    try:
        port = _forwarded_port(forward)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"over spdy")
            connection.shutdown(socket.SHUT_WR)
            assert connection.makefile("rb").read() == b"over spdy"
    finally:
        _, err = _stop(forward)
    upgrade = re.search(rb'verb="(\w+)" url="[^"]*/pods/echo/portforward" status="([^"]+)"', err)
    assert upgrade is not None, err
    assert upgrade.groups() == (b"POST", b"101 Switching Protocols")


@needs_kubectl
def test_kubectl_port_forward_never_reaches_the_host_loopback(web: StreamCluster) -> None:
    with socket.socket() as host_service:  # listening on 127.0.0.1, not on the pod IP
        host_service.bind(("127.0.0.1", 0))
        host_service.listen()
        port = host_service.getsockname()[1]
        forward = web.kubectl_popen("port-forward", "pod/web", f":{port}")
        try:
            local = _forwarded_port(forward)
            with socket.create_connection(("127.0.0.1", local), timeout=10) as connection:
                connection.settimeout(10)
                assert connection.recv(1) == b""  # closed: nothing reached
            _, err = forward.communicate(timeout=15)
        finally:
            _stop(forward)
        host_service.settimeout(0)
        with pytest.raises(BlockingIOError):
            host_service.accept()
    message = err.decode()
    assert f"error forwarding port {port} to pod" in message
    assert "connect: connection refused" in message
    pod_ip = web.pod("web")["status"]["podIP"]
    assert f"dial tcp4 {pod_ip}:{port}" in message


@needs_kubectl
def test_kubectl_port_forward_to_a_missing_pod(streams: StreamCluster) -> None:
    result = streams.kubectl("port-forward", "pod/absent", ":8888")
    assert result.returncode == 1
    assert 'pods "absent" not found' in result.stderr.decode()


# -- the official client ----------------------------------------------------------------------
def _core_api(cluster: StreamCluster) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
    return client.CoreV1Api(client.ApiClient(configuration=cfg))


def test_python_client_port_forward_over_channels(web: StreamCluster) -> None:
    from kubernetes.stream import portforward

    forward = portforward(
        _core_api(web).connect_get_namespaced_pod_portforward, "web", "default", ports="8888"
    )
    connection = forward.socket(8888)
    connection.setblocking(True)
    connection.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    connection.close()
    assert received.startswith(b"HTTP/1.0 200")
    assert b"Directory listing" in received
    assert forward.error(8888) is None
    forward.close()


def test_python_client_port_forward_reports_a_refused_port(web: StreamCluster) -> None:
    from kubernetes.stream import portforward

    forward = portforward(
        _core_api(web).connect_get_namespaced_pod_portforward, "web", "default", ports="9"
    )
    connection = forward.socket(9)
    connection.setblocking(True)
    assert connection.recv(1) == b""
    error = forward.error(9)
    assert error is not None and "connect: connection refused" in error
    forward.close()


def test_port_forward_refusals_over_raw_http(web: StreamCluster) -> None:
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol": "v4.channel.k8s.io",
    }
    cases = [
        ("absent/portforward?ports=80", {}, 404, 'pods "absent" not found'),
        ("web/portforward", upgrade, 400, 'query parameter "port" is required'),
        (
            "web/portforward?ports=http",
            upgrade,
            400,
            'unable to parse "http" as a port: strconv.ParseUint: parsing "http": invalid syntax',
        ),
        ("web/portforward?ports=70000", upgrade, 400, 'port "70000" must be > 0 and < 65536'),
        ("web/portforward?ports=8888", {}, 400, "Upgrade request required"),
    ]
    for path, headers, code, message in cases:
        status, body, _ = web.raw.get(f"{NS}/pods/{path}", headers=headers)
        assert (status, body["message"]) == (code, message), path
