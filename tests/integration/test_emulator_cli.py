"""``aiinfn-dev emulator`` as a user runs it: a separate process that kubectl can talk to."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed (scripts/setup installs kubernetes-client)"
)


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Start ``aiinfn-dev emulator --port 0`` and read the URL and kubeconfig it prints."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiinfn_hub.dev.cli",
            "emulator",
            "--port",
            "0",
            "--cluster",
            str(EXAMPLES / "cluster.yaml"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    url = kubeconfig = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and kubeconfig is None:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(r"serving on (https://\S+)", line):
            url = m.group(1)
        if m := re.search(r"export KUBECONFIG=(\S+)", line):
            kubeconfig = Path(m.group(1))
    assert url and kubeconfig, "emulator did not start:\n" + "".join(lines)
    try:
        yield url, kubeconfig
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "stopped" in out


def _client_minor() -> int:
    """kubectl's minor version; Debian 12's kubernetes-client is 1.20."""
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30
    ).stdout
    try:
        return int(json.loads(out)["clientVersion"]["minor"].rstrip("+"))
    except (ValueError, KeyError):
        return 0


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    assert KUBECTL is not None
    if args[:1] == ("apply",) and _client_minor() < 26:
        # before 1.26 kubectl validates client-side from /openapi/v2 (protobuf), which the
        # emulator does not serve; newer ones use its OpenAPI v3 index and server validation
        args = (*args, "--validate=false")
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_kubeconfig_points_at_the_emulator(emulator_process: tuple[str, Path]) -> None:
    url, kubeconfig = emulator_process
    text = kubeconfig.read_text()
    assert f"server: {url}" in text
    assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"


def test_only_the_kubeconfigs_token_opens_the_api(emulator_process: tuple[str, Path]) -> None:
    url, kubeconfig = emulator_process
    doc = yaml.safe_load(kubeconfig.read_text())
    token = doc["users"][0]["user"]["token"]
    ca = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    context = ssl.create_default_context(cadata=ca.decode())

    def get(headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(f"{url}/api/v1/pods", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert get({"Authorization": f"Bearer {token}"})[0] == 200
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        code, body = get(headers)
        assert code == 401 and json.loads(body)["reason"] == "Unauthorized"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_a_host_others_can_reach_is_refused_in_one_line(tmp_path: Path, host: str) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "aiinfn_hub.dev.cli", "emulator", "--port", "0"),
            *("--host", host, "--state-dir", str(tmp_path / "state")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"aiinfn-dev emulator: refusing to listen on {host!r}, not a loopback address "
        "(the API runs pods; pass --insecure-listen to expose it anyway)"
    )
    assert not (tmp_path / "state").exists()  # nothing was started or written


@needs_kubectl
def test_kubectl_get_apply_logs_delete(emulator_process: tuple[str, Path]) -> None:
    url, kubeconfig = emulator_process
    out = kubectl(kubeconfig, "get", "nodes", "-o", "name")
    nodes = sorted(out.split())
    assert len(nodes) == 4 and all(n.startswith("node/") for n in nodes)

    pod = """
apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default, labels: {app: hello}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
    command: ["echo", "hello"]
"""
    assert "pod/hello created" in kubectl(kubeconfig, "apply", "-f", "-", stdin=pod)
    # --server works as well as the kubeconfig
    table = kubectl(kubeconfig, "--server", url, "get", "nodes,pods", "-A")
    assert re.search(r"NAMESPACE\s+NAME\s+READY\s+STATUS", table)
    assert "pod/hello" in table and "node/" in table
    deadline = time.monotonic() + 10
    while "Running" not in kubectl(kubeconfig, "get", "pod", "hello"):
        assert time.monotonic() < deadline, "pod hello never became Running"
        time.sleep(0.1)
    assert "pod/hello unchanged" in kubectl(kubeconfig, "apply", "-f", "-", stdin=pod)
    assert 'pod "hello" deleted' in kubectl(kubeconfig, "delete", "pod", "hello", "--wait=true")
    assert "hello" not in kubectl(kubeconfig, "get", "pods", "-o", "name")
