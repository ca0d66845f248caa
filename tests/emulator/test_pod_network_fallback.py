"""Choosing the pod network: ``loopback`` as today, ``auto`` falling back to it with one log
line saying why, ``netns`` refusing to start where namespaces are impossible, and the
``aiinfn-dev emulator --pod-network`` flag. No root needed: the reasons are forced.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from pathlib import Path

import pytest
from emulator_client import RawClient, wait_until
from stream_fixtures import NS, PY, process_pod

from aiinfn_hub.dev.cli import build_parser
from aiinfn_hub.dev.emulator.cluster import ClusterSpec, NodeSpec
from aiinfn_hub.dev.emulator.controllers import pod_network
from aiinfn_hub.dev.emulator.controllers.pod_network import (
    LoopbackNetwork,
    NetworkUnavailable,
    open_pod_network,
)
from aiinfn_hub.dev.emulator.runtime import Emulator

LOGGER = "aiinfn_hub.dev.emulator.controllers.pod_network"


def _close(network: pod_network.PodNetwork) -> None:
    asyncio.run(network.close())


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and "pod network" in r.getMessage()]


@pytest.fixture
def no_namespaces(monkeypatch: pytest.MonkeyPatch) -> str:
    reason = "making network namespaces needs root"
    monkeypatch.setattr(pod_network, "namespaces_unavailable", lambda: reason)
    return reason


def test_auto_falls_back_to_loopback_with_one_line_saying_why(
    no_namespaces: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    network = open_pod_network("auto", processes=True, lock_dir=tmp_path)
    try:
        assert isinstance(network, LoopbackNetwork)
        [line] = _lines(caplog)
        assert line.levelno == logging.WARNING
        assert line.getMessage() == (
            f"pod network: loopback addresses {network.pool.prefix} on this machine's "
            f"network, no network namespaces ({no_namespaces})"
        )
    finally:
        _close(network)


def test_auto_falls_back_when_the_bridge_cannot_be_made(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    def refuse(lock_dir: Path) -> None:
        raise NetworkUnavailable("ip link add aiinfn-64 type bridge: Operation not permitted")

    monkeypatch.setattr(pod_network, "namespaces_unavailable", lambda: None)
    monkeypatch.setattr(pod_network, "NamespaceNetwork", refuse)
    caplog.set_level(logging.INFO, LOGGER)
    network = open_pod_network("auto", processes=True, lock_dir=tmp_path)
    try:
        assert isinstance(network, LoopbackNetwork)
        [line] = _lines(caplog)
        assert line.getMessage().endswith(
            "(the pod bridge could not be made: ip link add aiinfn-64 type bridge: "
            "Operation not permitted)"
        )
    finally:
        _close(network)


@pytest.mark.parametrize(
    ("mode", "processes", "reason"),
    [
        ("loopback", True, "pod network loopback was chosen"),
        ("auto", False, "no pod runs as a local process"),
    ],
)
def test_loopback_chosen_or_not_needed_says_so_quietly(
    mode: pod_network.PodNetworkMode,
    processes: bool,
    reason: str,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    network = open_pod_network(mode, processes=processes, lock_dir=tmp_path)
    try:
        assert isinstance(network, LoopbackNetwork)
        [line] = _lines(caplog)
        assert line.levelno == logging.INFO
        assert line.getMessage().endswith(f"({reason})")
    finally:
        _close(network)


def test_netns_refuses_to_start_where_it_is_impossible(no_namespaces: str, tmp_path: Path) -> None:
    with pytest.raises(NetworkUnavailable, match=f"netns is not possible here: {no_namespaces}"):
        open_pod_network("netns", processes=True, lock_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown pod network 'bridge'"):
        open_pod_network("bridge", processes=True, lock_dir=tmp_path)  # type: ignore[arg-type]


def test_an_emulator_falling_back_runs_pods_as_today(
    no_namespaces: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    cluster = ClusterSpec(nodes=[NodeSpec(name="node-1", capacity={"cpu": "8", "memory": "16Gi"})])
    emulator = Emulator(
        cluster, state_dir=tmp_path / "emulator", run_annotated_processes=True, pod_network="auto"
    )
    with emulator:
        raw = RawClient(emulator.access)
        server = [PY, "-m", "http.server", "--bind", "$(POD_IP)", "8888"]
        pod = process_pod(
            "web",
            [
                {
                    "name": "web",
                    "image": "python",
                    "command": server,
                    "env": [
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        }
                    ],
                    "readinessProbe": {"tcpSocket": {"port": 8888}},
                }
            ],
        )
        code, body, _ = raw.post(f"{NS}/pods", pod)
        assert code == 201, body

        def ready() -> str | None:
            _, current, _ = raw.get(f"{NS}/pods/web")
            statuses = current.get("status", {}).get("containerStatuses") or []
            ok = statuses and statuses[0].get("ready")
            return str(current["status"]["podIP"]) if ok else None

        ip = wait_until(ready, 15, "pod web ready")
        assert ip.startswith("127.")  # a loopback pod IP on this machine's network
        with urllib.request.urlopen(f"http://{ip}:8888/", timeout=5) as response:
            assert response.status == 200
    assert any(no_namespaces in r.getMessage() for r in _lines(caplog))


def test_an_unknown_pod_network_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unknown pod network"):
        Emulator(pod_network="everywhere")  # type: ignore[arg-type]


def test_the_emulator_command_defaults_to_auto() -> None:
    parser = build_parser()
    assert parser.parse_args(["emulator"]).pod_network == "auto"
    assert parser.parse_args(["emulator", "--pod-network", "loopback"]).pod_network == "loopback"
    with pytest.raises(SystemExit):
        parser.parse_args(["emulator", "--pod-network", "bridge"])
