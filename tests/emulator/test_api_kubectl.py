"""kubectl 1.32 against the emulator: discovery, tables, apply, delete, logs and describe.

kubectl is the strictest everyday client: it reads (aggregated) discovery, the OpenAPI v3 index
to learn about server-side field validation, Table responses for ``get``, and sends
``fieldValidation=Strict`` and three-way strategic merge patches for ``apply``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_fixtures import KUBECTL, NS, ApiServer, pod_body, running_api

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on PATH")

MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels: {app: demo}
data:
  a: "1"
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: demo}
spec:
  containers:
  - name: main
    image: python:3.11
    command: ["sleep", "1000"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: train
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox:1.36
"""


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def test_get_nodes_and_pods_prints_the_real_columns(api: ApiServer, tmp_path: Path) -> None:
    await api.create(f"{NS}/pods", pod_body("p1"))
    code, out, err = await api.kubectl(tmp_path, "get", "nodes,pods", "-A")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert lines[1].split()[:3] == ["node/node-a", "Ready", "worker"]
    pod_header = next(line for line in lines if line.startswith("NAMESPACE"))
    assert pod_header.split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[-1].split()[:5] == ["default", "pod/p1", "0/1", "Pending", "0"]


async def test_wide_output_adds_the_priority_columns(api: ApiServer, tmp_path: Path) -> None:
    await api.create(f"{NS}/pods", pod_body("p1"))
    code, out, err = await api.kubectl(tmp_path, "get", "pods", "-o", "wide")
    assert code == 0, err
    assert out.splitlines()[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    code, out, err = await api.kubectl(tmp_path, "get", "nodes", "-o", "wide")
    assert code == 0, err
    assert "INTERNAL-IP" in out.splitlines()[0] and "10.0.0.7" in out


async def test_apply_then_reapply_then_delete(api: ApiServer, tmp_path: Path) -> None:
    code, out, err = await api.kubectl(tmp_path, "apply", "-f", "-", stdin=MANIFESTS)
    assert code == 0, err
    assert out.splitlines() == [
        "configmap/cfg created",
        "pod/web created",
        "job.batch/train created",
    ]
    changed = MANIFESTS.replace('a: "1"', 'a: "2"')
    code, out, err = await api.kubectl(tmp_path, "apply", "-f", "-", stdin=changed)
    assert code == 0, err
    assert out.splitlines() == [
        "configmap/cfg configured",
        "pod/web unchanged",
        "job.batch/train unchanged",
    ]
    cm = (await api.get(f"{NS}/configmaps/cfg")).body
    assert cm["data"] == {"a": "2"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]
    code, out, err = await api.kubectl(tmp_path, "delete", "-f", "-", stdin=changed)
    assert code == 0, err
    assert out.splitlines() == [
        'configmap "cfg" deleted',
        'pod "web" deleted',
        'job.batch "train" deleted',
    ]
    assert (await api.get(f"{NS}/configmaps/cfg")).code == 404


async def test_server_side_apply(api: ApiServer, tmp_path: Path) -> None:
    manifest = MANIFESTS.split("---")[0]
    code, out, err = await api.kubectl(
        tmp_path, "apply", "--server-side", "-f", "-", stdin=manifest
    )
    assert code == 0, err
    assert out.strip() == "configmap/cfg serverside-applied"


async def test_strict_validation_errors_reach_the_user(api: ApiServer, tmp_path: Path) -> None:
    bad = MANIFESTS.split("---")[1].replace(
        "    image: python:3.11", "    image: python:3.11\n    gpus: 2"
    )
    code, _out, err = await api.kubectl(tmp_path, "apply", "-f", "-", stdin=bad)
    assert code != 0
    assert 'strict decoding error: unknown field "spec.containers[0].gpus"' in err
    invalid = MANIFESTS.split("---")[1].replace("    image: python:3.11\n", "")
    code, _out, err = await api.kubectl(tmp_path, "create", "-f", "-", stdin=invalid)
    assert code != 0
    assert 'The Pod "web" is invalid: spec.containers[0].image: Required value' in err


async def test_logs_describe_and_json_output(api: ApiServer, tmp_path: Path) -> None:
    await api.create(f"{NS}/pods", pod_body("lp"))
    api.store.logs[("default", "lp", "main")] = "hello from the pod\n"
    code, out, err = await api.kubectl(tmp_path, "logs", "lp")
    assert (code, out) == (0, "hello from the pod\n"), err
    code, out, err = await api.kubectl(tmp_path, "describe", "pod", "lp")
    assert code == 0, err
    assert "QoS Class:" in out and "BestEffort" in out and "node.kubernetes.io/not-ready" in out
    code, out, err = await api.kubectl(tmp_path, "get", "pod", "lp", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["spec"]["schedulerName"] == "default-scheduler"


async def test_missing_objects_and_label_selectors(api: ApiServer, tmp_path: Path) -> None:
    code, _out, err = await api.kubectl(tmp_path, "get", "pod", "ghost")
    assert code != 0 and 'pods "ghost" not found' in err
    await api.create(f"{NS}/pods", pod_body("sel", labels={"tier": "web"}))
    await api.create(f"{NS}/pods", pod_body("other", labels={"tier": "db"}))
    code, out, err = await api.kubectl(tmp_path, "get", "pods", "-l", "tier in (web)", "-o", "name")
    assert (code, out) == (0, "pod/sel\n"), err


async def test_get_watch_prints_table_rows_as_events_arrive(api: ApiServer, tmp_path: Path) -> None:
    await api.create(f"{NS}/pods", pod_body("first"))
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        *api.kubectl_flags(tmp_path),
        "get",
        "pods",
        "--watch",
        "--request-timeout=2s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(tmp_path), "KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin"},
    )
    await api.wait_watchers(1, timeout=10)
    await api.create(f"{NS}/pods", pod_body("second"))
    out, _err = await asyncio.wait_for(proc.communicate(), 20)
    rows = [line.split()[:3] for line in out.decode().splitlines()]
    assert rows[0] == ["NAME", "READY", "STATUS"]
    assert ["first", "0/1", "Pending"] in rows and ["second", "0/1", "Pending"] in rows
