"""Fixtures of the kernel discovery tests: a home, a managed area, an apptainer stub."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder for the test (HOME points to it)."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


@pytest.fixture
def managed(tmp_path: Path) -> Path:
    """An empty managed environments area (the platform's /envs)."""
    folder = tmp_path / "envs"
    folder.mkdir()
    return folder


@pytest.fixture
def apptainer_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An ``apptainer`` on PATH that records its argv (one JSON line per call) and, like
    ``apptainer exec``, runs the command after the image on this machine. Apptainer itself
    cannot be installed here (no Debian package)."""
    folder = tmp_path / "stub-bin"
    folder.mkdir()
    record = tmp_path / "apptainer-calls.jsonl"
    stub = folder / "apptainer"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(record)!r}, 'a') as log:\n"
        "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "args = sys.argv[1:]\n"
        "assert args[0] == 'exec', args\n"
        "image = next(n for n, a in enumerate(args) if a.endswith('.sif'))\n"
        "os.execvp(args[image + 1], args[image + 1 :])\n"
    )
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    yield record
