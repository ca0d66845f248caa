"""``aiinfn-dev dev`` where pod network namespaces are refused: ``auto`` falls back to loopback
addresses and the banner says why; ``--pod-network netns`` stops with one clear line.

The refusal is the one a container without CAP_NET_ADMIN gives: an ``ip`` first on the PATH
answers every call with RTNETLINK's "Operation not permitted" (as a non-root user, the reason
is root instead; both are the platform's own words)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dev_helpers import Dev, children_of, started_dev

from aiinfn_hub.dev.emulator.controllers.pod_network import namespaces_unavailable
from aiinfn_hub.dev.processes import free_port

pytestmark = pytest.mark.slow
REFUSAL = "RTNETLINK answers: Operation not permitted"


@pytest.fixture(scope="module")
def refusing_ip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a platform whose ``ip`` refuses everything."""
    folder = tmp_path_factory.mktemp("refusing-ip")
    stub = folder / "ip"
    stub.write_text(f'#!/bin/sh\necho "{REFUSAL}" >&2\nexit 2\n')
    stub.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory, refusing_ip: dict[str, str]) -> Iterator[Dev]:
    state = tmp_path_factory.mktemp("refused") / "state"
    with started_dev(state, free_port(), env=refusing_ip) as running:
        yield running


def test_auto_falls_back_to_loopback_and_the_banner_says_why(dev: Dev) -> None:
    pods = dev.banner_line("pods")
    found = re.fullmatch(
        r"loopback addresses 127\.\d+\.0\.0/16 on this machine's network, "
        r"no network namespaces \((.+)\)",
        pods,
    )
    assert found, pods
    reason = found.group(1)
    if namespaces_unavailable() is None:  # root with ip: the refusal itself is the reason
        assert reason.startswith("the pod bridge could not be made: ip "), reason
        assert reason.endswith(REFUSAL), reason
    else:
        assert reason == namespaces_unavailable()
    assert dev.pod_gateway is None
    assert dev.banner_line("buckets").startswith("local S3 at http://127.0.0.1:")


@pytest.mark.timeout(240)
def test_on_loopback_a_server_starts_on_its_127_address_and_mounts_its_bucket(dev: Dev) -> None:
    session = dev.start_server("alice", "alice-pw")
    pod = dev.server_pod("alice")
    assert pod["status"]["podIP"].startswith("127."), pod["status"]
    in_pod = ("exec", "-n", "jupyterhub", "jupyter-alice", "-c", "notebook", "--")
    # the pod shares this machine's network
    assert dev.kubectl(*in_pod, "readlink", "/proc/self/ns/net").strip() == os.readlink(
        "/proc/self/ns/net"
    )
    dev.kubectl(*in_pod, "bunshin", "ls")  # the service at 127.0.0.1, as before
    assert dev.bucket_readme(session, "alice") == "Your bucket.\n"


def test_netns_where_refused_is_one_clear_line(tmp_path: Path, refusing_ip: dict[str, str]) -> None:
    state = tmp_path / "state"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiinfn_hub.dev.cli",
            "dev",
            *("--state-dir", str(state), "--port", str(free_port())),
            *("--pod-network", "netns"),
        ],
        env={**os.environ, **refusing_ip},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    line = done.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith("aiinfn-dev dev: pod network netns is not possible here: "), line
    if namespaces_unavailable() is None:
        assert line.endswith(REFUSAL), line
    assert not children_of(state)
