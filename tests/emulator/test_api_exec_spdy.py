"""``pods/exec`` and ``pods/attach`` over SPDY: kubectl 1.32 told to leave WebSockets aside
(``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``), as kubectl before 1.30 always speaks.

kubectl opens one SPDY stream per channel (error, stdin, stdout, stderr, resize) and reads the
``Status`` of the ``v4.channel.k8s.io`` error stream for its exit code. The raw-HTTP checks
read the handshake's refusals, which the kubelet writes as plain text.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from stream_fixtures import (
    NS,
    PY,
    StreamCluster,
    needs_kubectl,
    process_pod,
    start_stream_cluster,
    streams,
    web_pod,
)

__all__ = ["streams"]  # the module-scoped fixture, shared by the tests below


@dataclass
class SpdyCluster(StreamCluster):
    """The same emulator; every kubectl it runs speaks SPDY for exec and attach."""

    def kubectl_env(self) -> dict[str, str]:
        return {**super().kubectl_env(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}


@pytest.fixture(scope="module")
def spdy(streams: StreamCluster) -> Iterator[SpdyCluster]:
    cluster = SpdyCluster(**{f.name: getattr(streams, f.name) for f in fields(streams)})
    cluster.create(web_pod("web"))
    cluster.serving("web")
    yield cluster


@needs_kubectl
def test_exec_keeps_stdout_and_stderr_apart(spdy: SpdyCluster) -> None:
    result = spdy.kubectl("exec", "web", "--", "sh", "-c", 'echo "out $GREETING"; echo err >&2')
    assert (result.returncode, result.stdout, result.stderr) == (0, b"out hello\n", b"err\n")


@needs_kubectl
def test_exec_pipes_stdin_to_the_command(spdy: SpdyCluster) -> None:
    data = b"".join(b"line %d\n" % i for i in range(2000))
    result = spdy.kubectl("exec", "-i", "web", "--", "sh", "-c", "cat; echo done", stdin=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data + b"done\n"  # all of it, and the FIN ended stdin


@needs_kubectl
def test_exec_exit_code_becomes_kubectl_exit_status(spdy: SpdyCluster) -> None:
    result = spdy.kubectl("exec", "web", "--", "sh", "-c", "echo partial; exit 7")
    assert result.returncode == 7
    assert result.stdout == b"partial\n"
    assert b"command terminated with exit code 7" in result.stderr


@needs_kubectl
def test_exec_in_a_simulated_pod_reports_the_runtime_error(spdy: SpdyCluster) -> None:
    spdy.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sim"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep"]}]},
        }
    )
    spdy.running("sim")
    result = spdy.kubectl("exec", "sim", "--", "ls")
    assert result.returncode == 1
    assert b'exec: "ls": executable file not found in $PATH' in result.stderr


@needs_kubectl
def test_exec_tty_gives_a_terminal_of_the_client_size(spdy: SpdyCluster) -> None:
    code, output = spdy.kubectl_in_terminal(
        "exec",
        "-it",
        "web",
        "--",
        "sh",
        "-c",
        'tty; stty size; read line; echo "got $line"; exit 3',
        keys=b"typed\r",
        until=b"/dev/pts/",
        size=(31, 101),
    )
    text = output.decode(errors="replace")
    assert code == 3, text
    assert "31 101" in text  # the size came on the resize stream
    assert "got typed" in text


@needs_kubectl
def test_attach_over_spdy_streams_output_until_the_process_ends(spdy: SpdyCluster) -> None:
    ticker = (
        "i=0; while [ ! -e stop ]; do echo tick $i; i=$((i+1)); "
        f'{PY} -c "import time; time.sleep(0.05)"; done; echo bye'
    )
    spdy.create(
        process_pod(
            "ticker",
            [{"name": "main", "image": "x", "command": ["sh", "-c", ticker]}],
            restartPolicy="Never",
        )
    )
    spdy.running("ticker")
    attach = spdy.kubectl_popen("attach", "ticker")
    assert attach.stdout is not None
    first = attach.stdout.readline()
    assert first.startswith(b"tick "), first
    stop = spdy.kubectl("exec", "ticker", "--", "touch", "stop")
    assert stop.returncode == 0, stop.stderr
    rest, errors = attach.communicate(timeout=30)
    assert attach.returncode == 0, errors
    assert rest.splitlines()[-1] == b"bye"


# -- the handshake, over raw HTTP ---------------------------------------------------------
def _spdy_request(cluster: StreamCluster, path: str, versions: list[str]) -> bytes:
    """POST an ``Upgrade: SPDY/3.1`` request; the response head (and body) as read."""
    url = urlsplit(cluster.raw.base_url)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {url.netloc}",
        *(f"{name}: {value}" for name, value in cluster.raw.auth_headers.items()),
        "Connection: Upgrade",
        "Upgrade: SPDY/3.1",
        "Content-Length: 0",
        *(f"X-Stream-Protocol-Version: {v}" for v in versions),
    ]
    raw = socket.create_connection((url.hostname, url.port), timeout=10)
    conn: socket.socket = raw
    if url.scheme == "https":
        context = cluster.raw.context or ssl.create_default_context()
        conn = context.wrap_socket(raw, server_hostname=url.hostname)
    with conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.1 101"):
            return data
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body


def test_the_first_version_the_client_offers_is_chosen(spdy: SpdyCluster) -> None:
    path = f"{NS}/pods/web/exec?command=true&stdout=1"
    answer = _spdy_request(
        spdy, path, ["v5.channel.k8s.io", "v3.channel.k8s.io, v4.channel.k8s.io"]
    )
    head = answer.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 101 switching protocols")
    assert "upgrade: spdy/3.1" in head and "connection: upgrade" in head
    assert "x-stream-protocol-version: v3.channel.k8s.io" in head


def test_an_unknown_version_is_refused_as_the_kubelet_refuses_it(spdy: SpdyCluster) -> None:
    path = f"{NS}/pods/web/exec?command=true&stdout=1"
    answer = _spdy_request(spdy, path, ["v9.channel.k8s.io"])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ")
    accepted = [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-accepted-stream-protocol-versions:")
    ]
    assert accepted == [
        b"v4.channel.k8s.io",
        b"v3.channel.k8s.io",
        b"v2.channel.k8s.io",
        b"channel.k8s.io",
    ]
    message = (
        b"unable to upgrade: unable to negotiate protocol: client supports "
        b"[v9.channel.k8s.io], server accepts "
        b"[v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]\n"
    )
    assert body == message * 2
    missing = _spdy_request(spdy, path, [])
    assert missing.startswith(b"HTTP/1.1 400 ")
    assert missing.endswith(b"\r\n\r\nunable to upgrade: X-Stream-Protocol-Version is required\n")


def test_checks_before_the_handshake_still_answer_a_status(spdy: SpdyCluster) -> None:
    answer = _spdy_request(
        spdy, f"{NS}/pods/absent/exec?command=true&stdout=1", ["v4.channel.k8s.io"]
    )
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b'"message":"pods \\"absent\\" not found"' in answer.replace(b": ", b":")


@needs_kubectl
def test_stopping_the_emulator_ends_an_open_spdy_exec(tmp_path: Path) -> None:
    base = start_stream_cluster(tmp_path)
    cluster = SpdyCluster(**{f.name: getattr(base, f.name) for f in fields(base)})
    try:
        cluster.create(web_pod("web"))
        cluster.serving("web")
        exec_ = cluster.kubectl_popen("exec", "web", "--", "sh", "-c", "echo started; sleep 600")
        assert exec_.stdout is not None
        assert exec_.stdout.readline() == b"started\n"
    finally:
        cluster.emulator.stop()
    # the container was stopped under the exec: SIGKILL's 137, reported on the error stream
    assert exec_.wait(timeout=15) == 137
