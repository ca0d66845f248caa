"""Builders of real environments and spec managers for the kernel discovery tests.

A venv "with ipykernel" is a real ``python -m venv --without-pip`` whose site-packages holds a
``.pth`` file naming this test run's site-packages (as an editable install would): its Python
imports our ipykernel, so its kernel really starts (pip's own ensurepip would take seconds).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

from aiinfn_hub.envkernels.spec_manager import EnvironmentKernelSpecManager

OUR_SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def make_venv(path: Path, *, ipykernel: bool) -> Path:
    """A real venv at ``path``; with ipykernel importable through a .pth file if asked."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60
    )
    if ipykernel:
        (site_packages(path) / "our-test-run.pth").write_text(OUR_SITE_PACKAGES + "\n")
    return path


def site_packages(prefix: Path) -> Path:
    """The one lib/python3.X/site-packages of a prefix."""
    (found,) = prefix.glob("lib/python3*/site-packages")
    return found


def make_conda_prefix(path: Path, *, ipykernel: bool) -> Path:
    """A folder laid out like a conda environment: conda-meta/, bin/python, site-packages."""
    (path / "conda-meta").mkdir(parents=True)
    (path / "conda-meta" / "history").write_text("==> 2026-01-01 <==\n")
    (path / "bin").mkdir()
    (path / "bin" / "python").symlink_to(sys.executable)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    packages = path / "lib" / version / "site-packages"
    packages.mkdir(parents=True)
    if ipykernel:
        (packages / "ipykernel").mkdir()
        (packages / "ipykernel" / "__init__.py").write_text("")
    return path


def make_sif(path: Path) -> Path:
    """A file named like an Apptainer image (its content is never read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"#!/usr/bin/env run-singularity\n")
    return path


def manager_for(managed: Path, home: Path, **settings: object) -> EnvironmentKernelSpecManager:
    """A spec manager scanning ``managed`` and ``<home>/envs`` on every request, and no
    installed kernelspecs but the test run's own python3."""
    defaults: dict[str, object] = {"refresh_interval": 0.0, "kernel_dirs": []}
    return EnvironmentKernelSpecManager(
        managed_areas={"managed": str(managed)},
        user_areas={"mine": str(home / "envs")},
        **(defaults | settings),
    )


def recorded_calls(record: Path) -> list[list[str]]:
    """The argv of each call of the apptainer stub."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def run_code(manager: EnvironmentKernelSpecManager, kernel: str, code: str) -> Any:
    """Start ``kernel`` for real, run ``code`` and give back the value of its result."""
    km = KernelManager(kernel_name=kernel, kernel_spec_manager=manager)
    km.start_kernel()
    client = km.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        results: list[str] = []

        def keep(message: dict[str, Any]) -> None:
            if message["msg_type"] == "execute_result":
                results.append(message["content"]["data"]["text/plain"])

        reply = client.execute_interactive(code, timeout=60, output_hook=keep)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert len(results) == 1
        return ast.literal_eval(results[0])
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
