"""End to end: a real JupyterHub + configurable-http-proxy + upstream KubeSpawner spawn a real
``jupyterhub-singleuser`` as a local process through the emulator's kubelet, and the server's
API answers through the proxy.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiinfn_hub.dev.emulator.cluster import ClusterSpec
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.processes import free_port

pytestmark = pytest.mark.slow

HUB_CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "e2e", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [
    {{"name": "e2e", "services": ["e2e"],
      "scopes": ["admin:users", "admin:servers", "access:servers"]}},
]
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = "default"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
# each pod has its own loopback address; bind the server to it (also valid on a real cluster)
c.KubeSpawner.environment = {{
    "POD_IP": {{"valueFrom": {{"fieldRef": {{"fieldPath": "status.podIP"}}}}}}
}}
c.KubeSpawner.args = ["--ServerApp.ip=$(POD_IP)", "--allow-root"]
c.KubeSpawner.start_timeout = 60
c.KubeSpawner.http_timeout = 60
"""


def _request(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"token {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError as exc:  # not listening yet
        return 0, str(exc)


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def process_emulator(tmp_path: Path) -> Iterator[Emulator]:
    cluster = ClusterSpec.model_validate(
        {"nodes": [{"name": "server-1", "capacity": {"cpu": "16", "memory": "64Gi"}}]}
    )
    emu = Emulator(cluster, state_dir=tmp_path / "emulator", run_processes=True).start()
    try:
        yield emu
    finally:
        emu.stop()


def test_real_hub_spawns_singleuser_through_emulator(
    process_emulator: Emulator, tmp_path: Path
) -> None:
    if shutil.which("configurable-http-proxy") is None:
        pytest.fail("configurable-http-proxy is not on PATH: run scripts/setup (npm install)")
    state = tmp_path / "hub"
    state.mkdir()
    token = secrets.token_hex(16)
    ports = {"proxy_port": free_port(), "hub_port": free_port(), "proxy_api_port": free_port()}
    config = state / "jupyterhub_config.py"
    config.write_text(HUB_CONFIG.format(state=state, token=token, **ports))
    env = dict(os.environ)
    env["KUBECONFIG"] = str(process_emulator.write_kubeconfig())
    env["CONFIGPROXY_AUTH_TOKEN"] = secrets.token_hex(16)
    log_path = state / "hub.log"
    with log_path.open("wb") as log:
        hub = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=state,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{ports['proxy_port']}"
    api = f"{base}/hub/api"
    try:
        _wait(lambda: _request("GET", f"{api}/", token)[0] == 200, 60, "the hub API")
        assert _request("POST", f"{api}/users/alice", token)[0] == 201
        status, _ = _request("POST", f"{api}/users/alice/server", token)
        assert status in (201, 202), status

        def ready() -> bool:
            _, model = _request("GET", f"{api}/users/alice", token)
            return bool(model["servers"].get("", {}).get("ready"))

        _wait(ready, 40, "alice's server to be ready")
        pod = process_emulator.objects("Pod", "default")[0]
        assert pod["metadata"]["name"] == "jupyter-alice"
        # the single-user server answers through the proxy
        status, body = _request("GET", f"{base}/user/alice/api/status", token)
        assert status == 200, body
        assert "started" in body and "kernels" in body
        status, contents = _request("GET", f"{base}/user/alice/api/contents", token)
        assert status == 200 and contents["type"] == "directory"

        status, _ = _request("DELETE", f"{api}/users/alice/server", token)
        assert status in (202, 204)
        _wait(lambda: not process_emulator.objects("Pod", "default"), 60, "the pod to go")
    except BaseException:
        sys.stderr.write(log_path.read_text(errors="replace")[-6000:])
        for key, source in process_emulator.call(lambda: dict(process_emulator.store.logs)).items():
            text = source.read_text(errors="replace") if isinstance(source, Path) else source
            sys.stderr.write(f"--- log of {key}:\n{text[-4000:]}\n")
        raise
    finally:
        os.killpg(hub.pid, signal.SIGTERM)
        try:
            hub.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()
