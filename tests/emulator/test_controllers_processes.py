"""Containers as real local processes: env, logs, own IPs, probes, graceful and forced stops."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ControllerCluster, running_cluster

from aiinfn_hub.dev.emulator.resources import PODS, SECRETS

JSON = dict[str, Any]
PY = sys.executable


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path, run_processes=True) as c:
        c.add_node("n1", address="127.1.0.1")
        yield c


def _log(cluster: ControllerCluster, pod: str, container: str = "main") -> str:
    source = cluster.store.logs.get(("default", pod, container))
    return source.read_text() if isinstance(source, Path) else str(source or "")


async def _log_contains(cluster: ControllerCluster, pod: str, text: str) -> str:
    return str(
        await cluster.wait_for(
            lambda: text in (log := _log(cluster, pod)) and log,
            what=f"{text!r} in the log of {pod}",
        )
    )


def _ready(cluster: ControllerCluster, name: str) -> Callable[[], JSON | None]:
    """A check for a pod whose containers are all ready (here: once its probe passed)."""

    def check() -> JSON | None:
        pod = cluster.pod(name)
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return pod if statuses and all(s["ready"] for s in statuses) else None

    return check


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_environment_expansion_and_downward_api_reach_the_process(
    cluster: ControllerCluster,
) -> None:
    secret = {
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"token": base64.b64encode(b"s3cret").decode()},
    }
    cluster.store.create(SECRETS, secret)
    script = (
        "import os, sys\n"
        "keys = ['POD_IP', 'POD_NAME', 'NODE', 'TOKEN', 'URL', 'HOME', 'JOB_INDEX']\n"
        "print(' '.join(f'{k}={os.environ.get(k)}' for k in keys))\n"
        "print('cwd=' + os.getcwd())\n"
        "print('args=' + '|'.join(sys.argv[1:]), flush=True)\n"
    )
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "URL", "value": "http://$(POD_IP):8888/$(UNDEFINED)"},
        {
            "name": "JOB_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['index']"}},
        },
    ]
    cluster.create_pod(
        "env",
        annotations={"index": "7"},
        restartPolicy="Never",
        containers=[
            {
                "name": "main",
                "image": "python:3.11",
                "command": [PY, "-c", script, "--ip=$(POD_IP)", "$$(POD_IP)"],
                "env": env,
                "workingDir": "/srv/app",
            }
        ],
    )
    pod = await cluster.phase("env", "Succeeded")
    ip = pod["status"]["podIP"]
    home = cluster.state_dir / "pods" / "default_env"
    log = _log(cluster, "env")
    assert (
        f"POD_IP={ip} POD_NAME=env NODE=n1 TOKEN=s3cret URL=http://{ip}:8888/$(UNDEFINED) "
        f"HOME={home} JOB_INDEX=7"
    ) in log
    assert f"cwd={home / 'root' / 'srv' / 'app'}" in log
    assert f"args=--ip={ip}|$(POD_IP)" in log
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


async def test_an_http_server_is_reachable_at_its_own_pod_ip(cluster: ControllerCluster) -> None:
    command = [PY, "-m", "http.server", "18765", "--bind", "$(POD_IP)"]
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    probe = {"httpGet": {"path": "/", "port": "web"}, "periodSeconds": 1}
    for name in ("web-a", "web-b"):  # both on the same port, each on its own address
        cluster.create_pod(
            name,
            containers=[
                {
                    "name": "main",
                    "image": "python:3.11",
                    "command": command,
                    "env": env,
                    "ports": [{"name": "web", "containerPort": 18765}],
                    "readinessProbe": probe,
                }
            ],
        )
    for name in ("web-a", "web-b"):
        pod = await cluster.wait_for(_ready(cluster, name), timeout=10, what=f"{name} ready")
        url = f"http://{pod['status']['podIP']}:18765/"
        body = await asyncio.to_thread(_fetch, url)
        assert b"Directory listing" in body


async def test_sigterm_is_trapped_and_the_pod_removed(
    cluster: ControllerCluster, tmp_path: Path
) -> None:
    witness = tmp_path / "witness.txt"
    script = (
        "import pathlib, signal, sys, time\n"
        "def stop(*_):\n"
        f"    pathlib.Path({str(witness)!r}).write_text('got SIGTERM')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    cluster.create_pod("trap", command=[PY, "-c", script])
    await cluster.running("trap")
    await _log_contains(cluster, "trap", "ready")
    [pid] = cluster.controllers.kubelet.local_pids()[("default", "trap")]
    began = time.monotonic()
    cluster.delete(PODS, "trap")
    await cluster.gone(PODS, "trap")
    assert time.monotonic() - began < 3
    assert witness.read_text() == "got SIGTERM"
    assert not _alive(pid)
    assert [e["message"] for e in cluster.events("trap", "Killing")] == ["Stopping container main"]
    assert not (cluster.state_dir / "pods" / "default_trap").exists()  # folder removed


async def test_sigterm_ignored_means_sigkill_after_the_grace_period(
    cluster: ControllerCluster,
) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    cluster.create_pod("stubborn", command=[PY, "-c", script], terminationGracePeriodSeconds=1)
    await _log_contains(cluster, "stubborn", "ready")
    [pid] = cluster.controllers.kubelet.local_pids()[("default", "stubborn")]
    began = time.monotonic()
    cluster.delete(PODS, "stubborn")
    await cluster.wait_for(
        lambda: (p := cluster.pod("stubborn")) is None or p["status"]["phase"] == "Failed",
        what="stopped",
    )
    await cluster.gone(PODS, "stubborn")
    took = time.monotonic() - began
    assert 0.9 < took < 3
    assert not _alive(pid)


async def test_process_exit_codes_follow_the_restart_policy(cluster: ControllerCluster) -> None:
    cluster.create_pod("ok", command=[PY, "-c", "print('done')"], restartPolicy="Never")
    cluster.create_pod(
        "bad", command=[PY, "-c", "import sys; sys.exit(3)"], restartPolicy="OnFailure"
    )
    # like KubeSpawner's cmd: args without command are the whole command line
    cluster.create(
        PODS,
        {
            "metadata": {"name": "argsonly"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": "x", "args": [PY, "-c", "print('from args')"]}
                ],
            },
        },
    )
    ok = await cluster.phase("ok", "Succeeded")
    await cluster.phase("argsonly", "Succeeded")
    assert "from args" in _log(cluster, "argsonly")
    assert ok["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    bad = await cluster.wait_for(
        lambda: (
            (p := cluster.pod("bad"))
            and p["status"].get("containerStatuses")
            and p["status"]["containerStatuses"][0]["restartCount"] >= 1
            and p
        ),
        what="a restart",
    )
    last = bad["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert "done" in _log(cluster, "ok")


async def test_no_command_or_unknown_executable_fails_with_a_clear_event(
    cluster: ControllerCluster,
) -> None:
    cluster.create_pod("bare", restartPolicy="Never")
    cluster.create_pod("typo", command=["no-such-binary-here"], restartPolicy="Never")
    bare = await cluster.phase("bare", "Failed")
    terminated = bare["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert "set command" in terminated["message"]
    [failed] = cluster.events("bare", "Failed")
    assert failed["type"] == "Warning" and "no image entrypoint" in failed["message"]
    typo = await cluster.phase("typo", "Failed")
    assert (
        "executable file not found in $PATH"
        in (typo["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    )


async def test_missing_secret_keeps_the_container_waiting(cluster: ControllerCluster) -> None:
    env = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "later", "key": "t"}}}]
    cluster.create_pod(
        "needs",
        containers=[{"name": "main", "image": "x", "command": [PY, "-c", "print(1)"], "env": env}],
        restartPolicy="Never",
    )
    pod = await cluster.wait_for(
        lambda: (
            (p := cluster.pod("needs"))
            and "waiting" in (p["status"].get("containerStatuses") or [{}])[0].get("state", {})
            and p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
            and p
        ),
        what="CreateContainerConfigError",
    )
    assert pod["status"]["phase"] == "Pending"
    assert cluster.events("needs", "Failed")[0]["message"] == 'Error: secret "later" not found'
    cluster.store.create(
        SECRETS,
        {"metadata": {"name": "later", "namespace": "default"}, "data": {"t": "eA=="}},
    )
    await cluster.phase("needs", "Succeeded", timeout=5)


async def test_stopping_the_controllers_ends_every_process(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, run_processes=True) as cluster:
        cluster.add_node("n1")
        for i in range(3):
            cluster.create_pod(f"p{i}", command=["sleep", "60"])
        await cluster.wait_for(
            lambda: sum(len(v) for v in cluster.controllers.kubelet.local_pids().values()) == 3
        )
        pids = [p for v in cluster.controllers.kubelet.local_pids().values() for p in v]
        began = time.monotonic()
        await cluster.controllers.stop()
        assert time.monotonic() - began < 2
        assert not any(_alive(pid) for pid in pids)
