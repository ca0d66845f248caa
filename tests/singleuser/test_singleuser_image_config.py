"""The single-user image's wiring: its Jupyter server config selects our kernel spec manager,
the Dockerfile puts that config where Jupyter reads it, and a real Jupyter server started with
it lists the discovered environments over its REST API."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from envkernel_builders import make_sif, make_venv
from jupyter_core.paths import SYSTEM_CONFIG_PATH
from traitlets.config.loader import JSONFileConfigLoader
from traitlets.utils.importstring import import_item

from aiinfn_hub.envkernels.spec_manager import EnvironmentKernelSpecManager

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "images" / "singleuser"
CONFIG = IMAGE / "jupyter_server_config.json"


def test_the_config_selects_our_kernel_spec_manager() -> None:
    config = JSONFileConfigLoader(CONFIG.name, path=str(IMAGE)).load_config()
    manager_class = import_item(config.ServerApp.kernel_spec_manager_class)
    assert manager_class is EnvironmentKernelSpecManager
    configurable = EnvironmentKernelSpecManager.class_trait_names(config=True)
    unknown = set(config.get("EnvironmentKernelSpecManager", {})) - set(configurable)
    assert not unknown


def test_the_dockerfile_copies_the_config_onto_jupyters_config_path() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    copied = re.search(
        r"^COPY images/singleuser/jupyter_server_config\.json (\S+)$", dockerfile, re.M
    )
    assert copied, "the Dockerfile does not COPY jupyter_server_config.json"
    destination = Path(copied.group(1))
    assert destination.name == "jupyter_server_config.json"
    # the stacks put their own jupyter_server_config.py in /etc/jupyter; ours sits elsewhere
    assert str(destination.parent) in SYSTEM_CONFIG_PATH
    assert str(destination.parent) != "/etc/jupyter"


def test_the_dockerfile_pins_the_gpu_dashboards() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert re.search(r"\bjupyterlab-nvdashboard==\d+\.\d+\.\d+\b", dockerfile)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def environments(managed: Path, home: Path) -> None:
    """A managed venv, its clone and a managed image, there before the server starts."""
    make_venv(managed / "torch-2.3", ipykernel=True)
    make_sif(managed / "root-6.30.sif")
    make_venv(home / "envs" / "torch-2.3", ipykernel=True)


@pytest.fixture
def jupyter_server(tmp_path: Path, managed: Path, home: Path, environments: None) -> Iterator[str]:
    """A real Jupyter server configured by the image's file; the areas come from the user's
    config folder (both are read, as in the image)."""
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "EnvironmentKernelSpecManager": {
                    "managed_areas": {"managed": str(managed)},
                    "user_areas": {"mine": str(home / "envs")},
                }
            }
        )
    )
    port = _free_port()
    env = {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "JUPYTER_CONFIG_DIR": str(config_dir),
        # the image's file, read from a folder of the config path as /usr/local/etc/jupyter is
        "JUPYTER_CONFIG_PATH": str(IMAGE),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=test-token",
            f"--ServerApp.root_dir={home}",
            "--no-browser",
            "--allow-root",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                get(url, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def get(url: str, path: str) -> Any:
    request = urllib.request.Request(url + path, headers={"Authorization": "token test-token"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if response.headers.get_content_type() == "application/json" else body


@pytest.mark.slow
def test_a_jupyter_server_with_the_image_config_lists_the_environments(
    jupyter_server: str,
) -> None:
    specs = get(jupyter_server, "/api/kernelspecs")["kernelspecs"]
    shown = {name: model["spec"]["display_name"] for name, model in specs.items()}
    assert shown["env-managed-torch-2.3"] == "Python (managed: torch-2.3)"
    assert shown["env-mine-torch-2.3"] == "Python (my clone: torch-2.3)"
    assert shown["env-managed-root-6.30.sif"] == "Apptainer: root-6.30.sif"
    logo = specs["env-managed-root-6.30.sif"]["resources"]["logo-svg"]
    assert get(jupyter_server, logo).startswith(b"<svg")
