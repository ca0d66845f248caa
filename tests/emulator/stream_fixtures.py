"""Shared fixtures of the exec/attach/port-forward tests: an emulator with process-mode pods.

``StreamCluster`` runs a whole emulator (API + controllers) on its own thread with
``run_annotated_processes``: pods annotated ``emulator.aiinfn.dev/outcome: process`` run as
local processes, the others are simulated, so both kinds are reachable from one cluster.
Clients: kubectl (``kubectl``, ``kubectl_in_terminal`` for ``-t``), raw HTTP (``raw``) and
the kubeconfig for the Python clients. Everything waits on conditions, never on sleeps.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from emulator_client import RawClient, wait_until

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, NodeSpec
from aiinfn_hub.dev.emulator.controllers import OUTCOME_ANNOTATION
from aiinfn_hub.dev.emulator.runtime import Emulator

JSON = dict[str, Any]
NS = "/api/v1/namespaces/default"
KUBECTL = shutil.which("kubectl")
PY = sys.executable
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on PATH")

# the notebook-like pod: an HTTP server on its own pod IP, downward-API env, a mount and a
# working folder; its command writes into the mount before serving
WEB_COMMAND = f'echo from-main > /data/main.txt; exec {PY} -m http.server --bind "$POD_IP" 8888'


def process_pod(name: str, containers: list[JSON], **spec: Any) -> JSON:
    """A pod run as local processes (annotated ``process``)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {OUTCOME_ANNOTATION: "process"}},
        "spec": {"containers": containers, **spec},
    }


def web_pod(name: str = "web") -> JSON:
    return process_pod(
        name,
        [
            {
                "name": "notebook",
                "image": "jupyter/base-notebook",
                "command": ["sh", "-c", WEB_COMMAND],
                "workingDir": "/srv/work",
                "env": [
                    {"name": "GREETING", "value": "hello"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "POD_NAME",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                    },
                ],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        volumes=[{"name": "data", "emptyDir": {}}],
    )


def simulated_pod(name: str, containers: int = 1) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {"name": f"c{i}", "image": "busybox:1.36", "command": ["sleep", "inf"]}
                for i in range(containers)
            ]
        },
    }


@dataclass
class StreamCluster:
    """The running emulator and the clients pointed at it."""

    emulator: Emulator
    raw: RawClient
    kubeconfig: Path
    home: Path

    def create(self, pod: JSON) -> JSON:
        code, body, _ = self.raw.post(f"{NS}/pods", pod)
        assert code == 201, body
        return dict(body)

    def pod(self, name: str) -> JSON:
        code, body, _ = self.raw.get(f"{NS}/pods/{name}")
        assert code == 200, body
        return dict(body)

    def running(self, name: str) -> JSON:
        """Wait until every container of the pod runs (and is ready)."""

        def check() -> JSON | None:
            pod = self.pod(name)
            statuses = pod.get("status", {}).get("containerStatuses") or []
            ok = statuses and all(s.get("ready") and "running" in s["state"] for s in statuses)
            return pod if ok else None

        return dict(wait_until(check, 15, f"pod {name} running"))

    def serving(self, name: str, port: int = 8888) -> JSON:
        """Wait until the pod runs and something accepts connections on its port."""
        pod = self.running(name)
        ip = pod["status"]["podIP"]

        def accepts() -> bool:
            import socket

            try:
                with socket.create_connection((ip, port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(accepts, 15, f"{name} listening on {ip}:{port}")
        return pod

    def kubectl_env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig), "PATH": "/usr/bin:/bin"}

    def kubectl(
        self, *args: str, stdin: bytes | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[bytes]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            env=self.kubectl_env(),
            timeout=timeout,
            check=False,
        )

    def kubectl_popen(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """kubectl running in the background (``env``: extra variables)."""
        assert KUBECTL is not None
        return subprocess.Popen(
            [KUBECTL, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**self.kubectl_env(), **env},
        )

    def kubectl_in_terminal(
        self, *args: str, keys: bytes, until: bytes, size: tuple[int, int] = (30, 100)
    ) -> tuple[int, bytes]:
        """Run kubectl on a pseudo-terminal of ``size`` (rows, columns), type ``keys`` once
        ``until`` has appeared; (exit code, everything it printed)."""
        assert KUBECTL is not None
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        process = subprocess.Popen(
            [KUBECTL, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**self.kubectl_env(), "TERM": "xterm"},
            start_new_session=True,
        )
        os.close(slave)
        output, typed = b"", False
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break  # the terminal closed: kubectl has exited
                    if not chunk:
                        break
                    output += chunk
                if not typed and until in output:
                    os.write(master, keys)
                    typed = True
                if process.poll() is not None and not ready:
                    break
            code = process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
            os.close(master)
        return code, output


def start_stream_cluster(base: Path) -> StreamCluster:
    """An emulator with one node whose state lives in ``base``; ``emulator.stop()`` it."""
    cluster = ClusterSpec(nodes=[NodeSpec(name="node-1", capacity={"cpu": "8", "memory": "16Gi"})])
    emulator = Emulator(cluster, state_dir=base / "emulator", run_annotated_processes=True)
    emulator.start()
    home = base / "home"
    home.mkdir()
    return StreamCluster(emulator, RawClient(emulator.access), emulator.write_kubeconfig(), home)


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamCluster]:
    """One emulator per test module (pods are named per test)."""
    cluster = start_stream_cluster(tmp_path_factory.mktemp("streams"))
    try:
        yield cluster
    finally:
        cluster.emulator.stop()
