"""``Emulator.pod_gateway``: where pods with network namespaces reach this machine, so the
local platform knows where to listen for them (and None when pods share this machine's
network, where 127.0.0.1 is theirs too)."""

from __future__ import annotations

import http.server
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from iam_platform import wait_for

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, NodeSpec
from aiinfn_hub.dev.emulator.controllers.pod_network import namespaces_unavailable
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.juicefs_store import LocalJuiceFS, juicefs_path, missing_tools
from aiinfn_hub.dev.s3_server import LocalS3, moto_server_path

CLUSTER = ClusterSpec(nodes=[NodeSpec(name="node-1", capacity={"cpu": "4", "memory": "8Gi"})])
# what a pod's process prints: the answer of http://HOST:PORT/
FETCH = (
    "import sys, urllib.request; "
    "print(urllib.request.urlopen(f'http://{sys.argv[1]}/', timeout=5).read().decode())"
)


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from this machine"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serving_on() -> Iterator[Callable[[str], str]]:
    """Start an HTTP server on this machine at a given address (stopped after the test)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(host: str) -> str:
        server = http.server.ThreadingHTTPServer((host, 0), _Hello)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"{host}:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def fetch(address: str) -> list[str]:
    """The command of a pod fetching ``http://address/``."""
    return [sys.executable, "-c", FETCH, address]


def run_pod(
    emulator: Emulator, name: str, command: list[str], env: dict[str, str] | None = None
) -> tuple[str, str]:
    """A process-mode pod running ``command``: its phase once finished, and its log."""
    api = f"{emulator.url}/api/v1/namespaces/default/pods"
    session = requests.Session()
    session.headers.update(emulator.auth_headers)
    # per request: a session's own is overridden by $REQUESTS_CA_BUNDLE
    ca = str(emulator.ca_file)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "python",
                    "command": command,
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                }
            ],
        },
    }
    created = session.post(api, json=pod, timeout=10, verify=ca)
    assert created.status_code == 201, created.text

    def finished() -> str | None:
        phase = session.get(f"{api}/{name}", timeout=10, verify=ca).json()["status"].get("phase")
        return str(phase) if phase in ("Succeeded", "Failed") else None

    phase = wait_for(finished, 60, f"pod {name} to finish")
    return phase, session.get(f"{api}/{name}/log", timeout=10, verify=ca).text


def test_pods_sharing_this_machines_network_have_no_gateway(tmp_path: Path) -> None:
    with Emulator(CLUSTER, state_dir=tmp_path, run_processes=True) as emulator:
        assert emulator.pod_gateway is None


def test_pods_with_namespaces_reach_this_machine_at_the_gateway_only(
    tmp_path: Path, serving_on: Callable[[str], str]
) -> None:
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(reason)
    emulator = Emulator(CLUSTER, state_dir=tmp_path, run_processes=True, pod_network="netns")
    with emulator:
        gateway = emulator.pod_gateway
        assert gateway is not None and re.fullmatch(r"100\.\d+\.0\.1", gateway), gateway
        answered = run_pod(emulator, "at-the-gateway", fetch(serving_on(gateway)))
        assert answered == ("Succeeded", "hello from this machine\n")
        # the same server on this machine's 127.0.0.1: the pod's 127.0.0.1 is its own
        phase, _ = run_pod(emulator, "at-loopback", fetch(serving_on("127.0.0.1")))
        assert phase == "Failed"


def test_a_pod_reaches_the_local_juicefs_at_the_gateway_after_the_s3_moved(
    tmp_path: Path,
) -> None:
    """What an offloaded job's mount sidecar needs from its namespace: Redis at the gateway,
    and the S3 whose URL the file system's metadata holds, which must follow the S3 server
    from one run to the next (a run on loopback, then one with namespaces)."""
    reason = namespaces_unavailable() or ", ".join(missing_tools())
    if moto_server_path() is None:
        reason = "moto_server is not installed"
    if reason:
        pytest.skip(reason)
    with Emulator(
        CLUSTER, state_dir=tmp_path / "emulator", run_processes=True, pod_network="netns"
    ) as emulator:
        gateway = emulator.pod_gateway
        assert gateway is not None
        with LocalS3(tmp_path / "s3-first") as first:  # formatted on this machine's 127.0.0.1
            LocalJuiceFS(tmp_path / "juicefs", first.endpoint).start().stop()
        with LocalS3(tmp_path / "s3", host=gateway) as s3:
            juicefs = LocalJuiceFS(tmp_path / "juicefs", s3.endpoint, gateway=gateway).start()
            try:
                assert juicefs.metadata_url.startswith(f"redis://{gateway}:")
                # fsck reads the metadata in Redis, then lists the data in the bucket it names
                check = [juicefs_path() or "juicefs", "fsck", juicefs.metadata_url]
                env = {"META_PASSWORD": juicefs.password}
                phase, log = run_pod(emulator, "fsck", check, env)
                assert phase == "Succeeded", log
            finally:
                juicefs.stop()
