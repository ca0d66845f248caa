"""Native sidecar containers (KEP-753, GA in 1.33): init containers with restartPolicy Always.

What the real kubelet does and these tests hold the emulator to: a sidecar starts in its init
order and the next container waits for its startupProbe; it runs beside the app containers, is
restarted whenever it exits (whatever the pod's restartPolicy) and is stopped once the app
containers are done, which alone decide the phase; deletion stops the app containers first.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ControllerCluster, running_cluster

from aiinfn_hub.dev.emulator.resources import JOBS, PODS

JSON = dict[str, Any]
PY = sys.executable
OUTCOME = "emulator.aiinfn.dev/outcome"
SHARED = [{"name": "shared", "emptyDir": {}}]
MOUNT = [{"name": "shared", "mountPath": "/shared"}]

# a sidecar that becomes "mounted" after a delay, then runs until SIGTERM
SLOW_MOUNT = (
    "import pathlib, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "time.sleep(0.3)\n"
    "pathlib.Path(sys.argv[1]).write_text('mounted')\n"
    "print('sidecar up', flush=True)\n"
    "while True:\n"
    "    time.sleep(1)\n"
)
# the main container fails unless the sidecar was "mounted" before it started
NEEDS_MOUNT = (
    "import pathlib, sys\n"
    "if not pathlib.Path(sys.argv[1]).exists():\n"
    "    sys.exit('started before the sidecar was ready')\n"
    "print('main saw', pathlib.Path(sys.argv[1]).read_text(), flush=True)\n"
)


def _sidecar(name: str = "mount", command: list[str] | None = None, **fields: Any) -> JSON:
    container: JSON = {"name": name, "image": "juicedata/mount:ce-v1.2", "restartPolicy": "Always"}
    if command:
        container["command"] = command
    return {**container, **fields}


def _init_status(pod: JSON, name: str) -> JSON:
    return next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == name)


def _conditions(pod: JSON) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c["status"], c.get("reason", "")) for c in pod["status"].get("conditions", [])
    }


def _job(name: str, pod_spec: JSON, annotations: dict[str, str] | None = None, **spec: Any) -> JSON:
    template: JSON = {"spec": {"restartPolicy": "Never", **pod_spec}}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    return {"metadata": {"name": name}, "spec": {**spec, "template": template}}


def _job_condition(cluster: ControllerCluster, name: str, kind: str) -> bool:
    job = cluster.store.get(JOBS, "default", name) or {}
    return any(
        c["type"] == kind and c["status"] == "True"
        for c in job.get("status", {}).get("conditions") or []
    )


def _job_pods(cluster: ControllerCluster, job: str) -> list[JSON]:
    return [
        p
        for p in cluster.store.list(PODS, "default")
        if (p["metadata"].get("labels") or {}).get("job-name") == job
    ]


def _log(cluster: ControllerCluster, pod: str, container: str) -> str:
    source = cluster.store.logs.get(("default", pod, container))
    return source.read_text() if isinstance(source, Path) else str(source or "")


# -- local processes -------------------------------------------------------------------------
@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path, run_processes=True) as c:
        c.add_node("n1", address="127.1.0.1")
        yield c


async def test_job_with_a_sidecar_succeeds_and_the_sidecar_stops_after_main(
    local: ControllerCluster,
) -> None:
    pod_spec = {
        "volumes": SHARED,
        "initContainers": [
            _sidecar(
                command=[PY, "-c", SLOW_MOUNT, "/shared/ready"],
                volumeMounts=[{**MOUNT[0], "mountPropagation": "HostToContainer"}],
                startupProbe={"exec": {"command": ["test", "-f", "/shared/ready"]}},
            )
        ],
        "containers": [
            {
                "name": "main",
                "image": "python:3.11",
                "command": [PY, "-c", NEEDS_MOUNT, "/shared/ready"],
                "volumeMounts": MOUNT,
            }
        ],
    }
    local.create(JOBS, _job("bunshin", pod_spec, backoffLimit=0))
    await local.wait_for(lambda: _job_condition(local, "bunshin", "Complete"), what="Complete")
    [pod] = _job_pods(local, "bunshin")
    name = pod["metadata"]["name"]
    assert pod["status"]["phase"] == "Succeeded"
    main = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    sidecar = _init_status(pod, "mount")
    assert main["exitCode"] == 0 and sidecar["state"]["terminated"]["exitCode"] == 0
    assert sidecar["state"]["terminated"]["finishedAt"] >= main["finishedAt"]
    assert sidecar["restartCount"] == 0 and not sidecar["started"]
    assert _conditions(pod)["Initialized"] == ("True", "PodCompleted")
    # the main container saw what the sidecar wrote into the shared emptyDir
    assert "main saw mounted" in _log(local, name, "main")
    assert "sidecar up" in _log(local, name, "mount")
    started = [e["involvedObject"]["fieldPath"] for e in local.events(name, "Started")]
    assert started == ["spec.initContainers{mount}", "spec.containers{main}"]
    [killing] = local.events(name, "Killing")
    assert killing["message"] == "Stopping container mount"


async def test_sidecar_status_while_running_and_readiness(local: ControllerCluster) -> None:
    gate = local.state_dir / "pods" / "default_web" / "gate"
    sidecar = _sidecar(
        "proxy",
        command=["sleep", "30"],
        readinessProbe={"exec": {"command": ["test", "-f", "gate"]}},
    )
    local.create_pod("web", command=["sleep", "30"], initContainers=[sidecar])
    pod = await local.running("web")
    status = _init_status(pod, "proxy")
    assert status["started"] and "running" in status["state"]
    assert _conditions(pod)["Initialized"] == ("True", "")
    # readiness counts the sidecar: not ready until its probe passes
    assert not status["ready"]
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "ContainersReady")
    assert ready["status"] == "False"
    assert ready["message"] == "containers with unready status: [proxy]"
    gate.touch()

    def ready_pod() -> JSON | None:
        current = local.pod("web") or {}
        return current if _conditions(current).get("Ready") == ("True", "") else None

    pod = await local.wait_for(ready_pod, what="web Ready")
    assert _init_status(pod, "proxy")["ready"]
    local.delete(PODS, "web", grace_period=1)
    await local.gone(PODS, "web")


async def test_startup_probe_failure_kills_and_restarts_the_sidecar(
    local: ControllerCluster,
) -> None:
    sidecar = _sidecar(
        command=["sleep", "30"],
        startupProbe={"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1},
    )
    local.create_pod(
        "stuck",
        command=["sleep", "30"],
        restartPolicy="Never",
        terminationGracePeriodSeconds=1,
        initContainers=[sidecar],
    )

    def restarted() -> JSON | None:
        pod = local.pod("stuck") or {}
        statuses = pod.get("status", {}).get("initContainerStatuses") or []
        return pod if statuses and statuses[0]["restartCount"] >= 1 else None

    pod = await local.wait_for(restarted, timeout=5, what="the sidecar restarted")
    # the main container never started: the pod is still initializing
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] in (
        "PodInitializing",
        "ContainerCreating",
    )
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False"
    assert initialized["message"] == "containers with incomplete status: [mount]"
    assert local.events("stuck", "Unhealthy")[0]["type"] == "Warning"
    killing = local.events("stuck", "Killing")[0]["message"]
    assert killing == "Init container mount failed startup probe"
    assert not local.events("stuck", "Started")[-1]["involvedObject"]["fieldPath"].endswith(
        "{main}"
    )
    local.delete(PODS, "stuck", grace_period=0)
    await local.gone(PODS, "stuck")


async def test_a_sidecar_that_exits_is_restarted_even_with_restart_policy_never(
    local: ControllerCluster,
) -> None:
    local.create_pod(
        "flaky",
        command=["sleep", "30"],
        restartPolicy="Never",
        initContainers=[_sidecar(command=[PY, "-c", "raise SystemExit(3)"])],
    )

    def restarted_twice() -> JSON | None:
        pod = local.pod("flaky") or {}
        statuses = pod.get("status", {}).get("initContainerStatuses") or []
        return pod if statuses and statuses[0]["restartCount"] >= 2 else None

    pod = await local.wait_for(restarted_twice, what="two sidecar restarts")
    assert pod["status"]["phase"] == "Running"
    last = _init_status(pod, "mount")["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    main = pod["status"]["containerStatuses"][0]
    assert "running" in main["state"] and main["restartCount"] == 0
    assert _conditions(pod)["Initialized"] == ("True", "")  # stays initialized
    local.delete(PODS, "flaky", grace_period=1)
    await local.gone(PODS, "flaky")


async def test_deletion_stops_the_app_containers_before_the_sidecars(
    local: ControllerCluster,
) -> None:
    # main exits 0.3 s after its SIGTERM; the sidecar notes when it gets its own
    main = (
        "import pathlib, signal, sys, time\n"
        "def stop(*_):\n"
        "    time.sleep(0.3)\n"
        "    with open(sys.argv[1], 'a') as f: f.write('main exited\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('main up', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    sidecar = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        "    with open(sys.argv[1], 'a') as f: f.write('sidecar got SIGTERM\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "while True: time.sleep(1)\n"
    )
    order = local.state_dir / "order.txt"  # outside the pod folder, which goes with the pod
    local.create_pod(
        "ordered",
        initContainers=[_sidecar(command=[PY, "-c", sidecar, str(order)])],
        containers=[
            {"name": "main", "image": "python:3.11", "command": [PY, "-c", main, str(order)]}
        ],
    )
    await local.running("ordered")
    await local.wait_for(lambda: "main up" in _log(local, "ordered", "main"), what="main up")
    local.delete(PODS, "ordered", grace_period=5)
    await local.gone(PODS, "ordered")
    assert order.read_text().splitlines() == ["main exited", "sidecar got SIGTERM"]
    killing = [e["message"] for e in local.events("ordered", "Killing")]
    assert killing == ["Stopping container main", "Stopping container mount"]


# -- simulated containers --------------------------------------------------------------------
@pytest.fixture
async def simulated(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path) as c:
        c.add_node("n1", {"cpu": "2"})
        yield c


async def test_simulated_sidecar_runs_until_main_ends(simulated: ControllerCluster) -> None:
    annotations = {OUTCOME: "succeed", "emulator.aiinfn.dev/outcome-after": "0.2"}
    simulated.create_pod(
        "sim", annotations=annotations, restartPolicy="Never", initContainers=[_sidecar()]
    )
    pod = await simulated.running("sim")
    status = _init_status(pod, "mount")
    assert status["started"] and status["ready"] and "running" in status["state"]
    assert [(k, v[0]) for k, v in _conditions(pod).items()] == [
        ("PodReadyToStartContainers", "True"),
        ("Initialized", "True"),
        ("Ready", "True"),
        ("ContainersReady", "True"),
        ("PodScheduled", "True"),
    ]
    pod = await simulated.phase("sim", "Succeeded")
    sidecar = _init_status(pod, "mount")["state"]["terminated"]
    assert sidecar["exitCode"] == 143  # SIGTERM does not fail the pod
    assert (
        sidecar["finishedAt"]
        >= pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    )
    assert "simulated container mount started" in _log(simulated, "sim", "mount")


async def test_job_with_sidecar_fails_by_its_backoff_limit(simulated: ControllerCluster) -> None:
    annotations = {OUTCOME: "fail", "emulator.aiinfn.dev/outcome-after": "0.05"}
    pod_spec = {
        "initContainers": [_sidecar()],
        "containers": [{"name": "main", "image": "python:3.11"}],
    }
    simulated.create(JOBS, _job("broken", pod_spec, annotations, backoffLimit=1))
    await simulated.wait_for(lambda: _job_condition(simulated, "broken", "Failed"), what="Failed")
    job = simulated.store.get(JOBS, "default", "broken")
    assert job is not None and job["status"]["failed"] == 2
    annotations = {OUTCOME: "succeed", "emulator.aiinfn.dev/outcome-after": "0.05"}
    simulated.create(JOBS, _job("fine", pod_spec, annotations))
    await simulated.wait_for(lambda: _job_condition(simulated, "fine", "Complete"), what="done")


async def test_the_scheduler_counts_sidecars_beside_the_app_containers(
    simulated: ControllerCluster,
) -> None:
    def cpu(amount: str) -> JSON:
        return {"requests": {"cpu": amount}}

    # an ordinary init container of 1 CPU runs before main (1.5 CPU): 1.5 CPU fits in 2
    simulated.create_pod(
        "plain",
        requests={"cpu": "1500m"},
        initContainers=[{"name": "setup", "image": "busybox:1.36", "resources": cpu("1")}],
    )
    await simulated.running("plain")
    simulated.delete(PODS, "plain", grace_period=0)
    await simulated.gone(PODS, "plain")
    # a 1 CPU sidecar runs beside it: 2.5 CPU does not fit
    simulated.create_pod(
        "big", requests={"cpu": "1500m"}, initContainers=[_sidecar(resources=cpu("1"))]
    )

    def unschedulable() -> bool:
        conditions = _conditions(simulated.pod("big") or {"status": {}})
        return conditions.get("PodScheduled") == ("False", "Unschedulable")

    await simulated.wait_for(unschedulable, what="big Unschedulable")
