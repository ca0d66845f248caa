"""Contract tests of the emulator's controllers, against documented Kubernetes behaviour.

The cluster is examples/cluster.yaml: server-1 (4x T4), server-2 (2x RTX 5000), server-3
(3x A100 + MIG slices 3x 1g.10gb, 1x 3g.40gb), server-4 (2x A30 + three FPGAs).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_client import RawClient, wait_until
from kubernetes_asyncio.client import ApiClient

from aiinfn_hub.dev.emulator.cluster import ClusterSpec
from aiinfn_hub.dev.emulator.controllers.scheduling import (
    filter_reasons,
    pod_requests,
    tolerates,
)
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.kubemodel.quantity import parse_quantity

NS = "/api/v1/namespaces/default"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
GPU_PRODUCT = "nvidia.com/gpu.product"


def _pod(name: str, *, limits: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "python:3.11"}
    if limits:
        container["resources"] = {"limits": limits}
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def _get(raw: RawClient, name: str) -> dict[str, Any]:
    status, pod, _ = raw.get(f"{NS}/pods/{name}")
    assert status == 200, pod
    return dict(pod)


def _node_of(raw: RawClient, name: str) -> str:
    return str(wait_until(lambda: _get(raw, name)["spec"].get("nodeName"), what=f"{name} bound"))


def _failed_scheduling(raw: RawClient, name: str) -> str:
    def message() -> str | None:
        _, events, _ = raw.get(f"{NS}/events?fieldSelector=involvedObject.name%3D{name}")
        found = [e["message"] for e in events["items"] if e["reason"] == "FailedScheduling"]
        return found[-1] if found else None

    return str(wait_until(message, what=f"FailedScheduling for {name}"))


# -- pure rules ------------------------------------------------------------------------------
def test_effective_requests_follow_the_init_container_rule() -> None:
    spec = {
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3"}}}],
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
        ],
        "overhead": {"cpu": "100m"},
    }
    requests = pod_requests(spec)
    assert requests["cpu"] == parse_quantity("3.1")  # max(1, 3) + overhead
    assert requests["memory"] == 2**30 and requests["nvidia.com/gpu"] == 1
    assert requests["pods"] == 1


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (
            {"key": "reserved", "operator": "Equal", "value": "cms", "effect": "NoSchedule"},
            {"key": "reserved", "value": "cms", "effect": "NoSchedule"},
            True,
        ),
        (
            {"key": "reserved", "operator": "Equal", "value": "atlas"},
            {"key": "reserved", "value": "cms", "effect": "NoSchedule"},
            False,
        ),
        (
            {"key": "reserved", "operator": "Exists"},
            {"key": "reserved", "value": "cms", "effect": "NoExecute"},
            True,
        ),
        ({"operator": "Exists"}, {"key": "anything", "effect": "NoSchedule"}, True),
        (
            {"key": "reserved", "operator": "Exists", "effect": "NoExecute"},
            {"key": "reserved", "value": "cms", "effect": "NoSchedule"},
            False,
        ),
    ],
)
def test_toleration_matrix(
    toleration: dict[str, Any], taint: dict[str, Any], expected: bool
) -> None:
    assert tolerates([toleration], taint) is expected


def test_filter_reasons_are_worded_like_kube_scheduler() -> None:
    node = {
        "metadata": {"name": "n", "labels": {"zone": "a"}},
        "spec": {"taints": [{"key": "reserved", "value": "cms", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    # kube-scheduler's filter order: NodeUnschedulable, TaintToleration, NodeAffinity, Fit
    spec: dict[str, Any] = {"containers": [{"name": "c"}], "nodeSelector": {"zone": "b"}}
    assert filter_reasons(spec, node, {}, pod_requests(spec)) == [
        "node(s) had untolerated taint {reserved: cms}"
    ]
    spec["tolerations"] = [{"key": "reserved", "operator": "Exists"}]
    assert filter_reasons(spec, node, {}, pod_requests(spec)) == [
        "node(s) didn't match Pod's node affinity/selector"
    ]
    spec["nodeSelector"] = {"zone": "a"}
    spec["tolerations"] = [{"key": "reserved", "operator": "Exists"}]
    spec["containers"][0]["resources"] = {"requests": {"cpu": "3"}}
    assert filter_reasons(spec, node, {}, pod_requests(spec)) == ["Insufficient cpu"]


# -- scheduler -------------------------------------------------------------------------------
def test_gpu_models_mig_slices_and_fpgas_land_on_the_right_servers(raw: RawClient) -> None:
    cases = {
        "t4": ({"nvidia.com/gpu": "1"}, {GPU_PRODUCT: "Tesla-T4"}, "server-1"),
        "a100": ({"nvidia.com/gpu": "1"}, {GPU_PRODUCT: "NVIDIA-A100-SXM4-80GB"}, "server-3"),
        "mig": ({"nvidia.com/mig-1g.10gb": "1"}, {}, "server-3"),
        "u250": ({"amd.com/xilinx_u250_gen3x16_xdma_shell_4_1-0": "1"}, {}, "server-4"),
    }
    for name, (limits, selector, _) in cases.items():
        assert raw.post(f"{NS}/pods", _pod(name, limits=limits, nodeSelector=selector))[0] == 201
    for name, (_, _, node) in cases.items():
        assert _node_of(raw, name) == node


def test_required_and_preferred_node_affinity(raw: RawClient) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": GPU_PRODUCT,
                                "operator": "In",
                                "values": ["NVIDIA-A30", "Quadro-RTX-5000"],
                            }
                        ]
                    }
                ]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {
                        "matchExpressions": [
                            {"key": GPU_PRODUCT, "operator": "In", "values": ["NVIDIA-A30"]}
                        ]
                    },
                }
            ],
        }
    }
    raw.post(f"{NS}/pods", _pod("aff", affinity=affinity))
    assert _node_of(raw, "aff") == "server-4"


def test_unschedulable_pods_stay_pending_with_the_scheduler_message(raw: RawClient) -> None:
    raw.post(f"{NS}/pods", _pod("greedy", limits={"nvidia.com/gpu": "5"}))
    message = _failed_scheduling(raw, "greedy")
    assert message.startswith("0/4 nodes are available: 4 Insufficient nvidia.com/gpu.")
    assert "preemption:" in message
    pod = _get(raw, "greedy")
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")


def test_extended_resources_are_counted_and_freed(raw: RawClient) -> None:
    for i in range(3):
        raw.post(f"{NS}/pods", _pod(f"mig{i}", limits={"nvidia.com/mig-1g.10gb": "1"}))
    for i in range(3):
        _node_of(raw, f"mig{i}")
    raw.post(f"{NS}/pods", _pod("mig3", limits={"nvidia.com/mig-1g.10gb": "1"}))
    assert "Insufficient nvidia.com/mig-1g.10gb" in _failed_scheduling(raw, "mig3")
    raw.request("DELETE", f"{NS}/pods/mig0?gracePeriodSeconds=0")
    assert _node_of(raw, "mig3") == "server-3"  # freed units are reused


def test_taints_and_cordoned_nodes(emulator: Emulator, raw: RawClient) -> None:
    _, node, _ = raw.get("/api/v1/nodes/server-2")
    node["spec"]["taints"] = [{"key": "reserved", "value": "cms", "effect": "NoSchedule"}]
    assert raw.request("PUT", "/api/v1/nodes/server-2", node)[0] == 200
    selector = {GPU_PRODUCT: "Quadro-RTX-5000"}
    raw.post(f"{NS}/pods", _pod("outsider", nodeSelector=selector))
    assert "had untolerated taint {reserved: cms}" in _failed_scheduling(raw, "outsider")
    tolerations = [{"key": "reserved", "operator": "Equal", "value": "cms", "effect": "NoSchedule"}]
    raw.post(f"{NS}/pods", _pod("member", nodeSelector=selector, tolerations=tolerations))
    assert _node_of(raw, "member") == "server-2"
    _, node, _ = raw.get("/api/v1/nodes/server-1")
    node["spec"]["unschedulable"] = True
    raw.request("PUT", "/api/v1/nodes/server-1", node)
    raw.post(f"{NS}/pods", _pod("cordoned", nodeSelector={GPU_PRODUCT: "Tesla-T4"}))
    assert "node(s) were unschedulable" in _failed_scheduling(raw, "cordoned")


def test_higher_priority_preempts_lower_priority(raw: RawClient) -> None:
    selector = {GPU_PRODUCT: "Quadro-RTX-5000"}
    for i in range(2):
        raw.post(
            f"{NS}/pods",
            _pod(
                f"batch{i}",
                limits={"nvidia.com/gpu": "1"},
                nodeSelector=selector,
                priorityClassName="batch",
            ),
        )
        _node_of(raw, f"batch{i}")
    raw.post(
        f"{NS}/pods",
        _pod(
            "notebook",
            limits={"nvidia.com/gpu": "1"},
            nodeSelector=selector,
            priorityClassName="notebook",
        ),
    )
    assert _node_of(raw, "notebook") == "server-2"
    survivors = [n for n in ("batch0", "batch1") if raw.get(f"{NS}/pods/{n}")[0] == 200]
    assert len(survivors) == 1  # exactly one victim, the fewest needed
    _, events, _ = raw.get(f"{NS}/events?fieldSelector=reason%3DPreempted")
    assert len(events["items"]) == 1
    assert events["items"][0]["message"].startswith("Preempted by pod ")


def test_preemption_policy_never_waits(raw: RawClient) -> None:
    selector = {GPU_PRODUCT: "NVIDIA-A30"}
    for i in range(2):
        raw.post(
            f"{NS}/pods", _pod(f"nb{i}", limits={"nvidia.com/gpu": "1"}, nodeSelector=selector)
        )
        _node_of(raw, f"nb{i}")
    # "batch" has preemptionPolicy Never (and a lower priority anyway)
    raw.post(
        f"{NS}/pods",
        _pod(
            "late", limits={"nvidia.com/gpu": "1"}, nodeSelector=selector, priorityClassName="batch"
        ),
    )
    assert "preemption: not eligible due to preemptionPolicy=Never." in _failed_scheduling(
        raw, "late"
    )
    assert raw.get(f"{NS}/pods/nb0")[0] == 200 and raw.get(f"{NS}/pods/nb1")[0] == 200


# -- kubelet ---------------------------------------------------------------------------------
async def test_running_pods_deserialise_into_the_typed_model(raw: RawClient) -> None:
    pod = _pod("typed")
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1.36"}]
    raw.post(f"{NS}/pods", pod)
    wait_until(lambda: _get(raw, "typed")["status"]["phase"] == "Running")
    body = _get(raw, "typed")
    typed = ApiClient()._ApiClient__deserialize(body, "V1Pod")  # strict client-side model
    assert typed.status.pod_ip.startswith("127.") and not typed.status.pod_ip.startswith("127.0.")
    assert typed.status.container_statuses[0].state.running.started_at
    assert typed.status.init_container_statuses[0].state.terminated.reason == "Completed"
    assert {c.type for c in typed.status.conditions} >= {
        "Ready",
        "ContainersReady",
        "Initialized",
        "PodScheduled",
    }


def test_outcome_annotations_and_restart_policy(raw: RawClient, emulator: Emulator) -> None:
    ok = _pod("ok", restartPolicy="Never")
    ok["metadata"]["annotations"] = {"emulator.aiinfn.dev/outcome": "succeed"}
    bad = _pod("bad", restartPolicy="Never")
    bad["metadata"]["annotations"] = {
        "emulator.aiinfn.dev/outcome": "fail",
        "emulator.aiinfn.dev/exit-code": "3",
    }
    raw.post(f"{NS}/pods", ok)
    raw.post(f"{NS}/pods", bad)
    wait_until(lambda: _get(raw, "ok")["status"]["phase"] == "Succeeded")
    wait_until(lambda: _get(raw, "bad")["status"]["phase"] == "Failed")
    state = _get(raw, "bad")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["exitCode"], state["reason"]) == (3, "Error")
    raw.post(f"{NS}/pods", _pod("hook", restartPolicy="OnFailure"))
    wait_until(lambda: _get(raw, "hook")["status"]["phase"] == "Running")
    emulator.call(lambda: emulator.controllers.set_pod_outcome("default", "hook", "fail"))
    wait_until(
        lambda: _get(raw, "hook")["status"]["containerStatuses"][0]["restartCount"] >= 1,
        what="an OnFailure restart",
    )


@pytest.fixture
def annotated_raw(example_cluster: ClusterSpec, tmp_path: Path) -> Iterator[RawClient]:
    """An emulator that runs the pods annotated ``outcome: process`` as local processes."""
    emu = Emulator(
        example_cluster, state_dir=tmp_path / "annotated", run_annotated_processes=True
    ).start()
    try:
        yield RawClient(emu.access)
    finally:
        emu.stop()


def _marker_pod(name: str, marker: Path) -> dict[str, Any]:
    """A pod annotated to run as a local process whose command creates ``marker``."""
    pod = _pod(name, restartPolicy="Never")
    pod["metadata"]["annotations"] = {"emulator.aiinfn.dev/outcome": "process"}
    script = f"open({str(marker)!r}, 'w').close()\nimport time\ntime.sleep(60)\n"
    pod["spec"]["containers"][0]["command"] = [sys.executable, "-c", script]
    return pod


def test_the_process_annotation_runs_nothing_outside_process_mode(
    raw: RawClient, emulator: Emulator, annotated_raw: RawClient, tmp_path: Path
) -> None:
    # whoever may create pods must not run commands on this machine through an emulator
    # started to simulate them: the pod runs, simulated, and its command never does
    marker = tmp_path / "ran"
    raw.post(f"{NS}/pods", _marker_pod("sneaky", marker))
    wait_until(lambda: _get(raw, "sneaky")["status"]["phase"] == "Running", what="Running")
    log = str(raw.get(f"{NS}/pods/sneaky/log")[1])
    assert "simulated container main started" in log
    assert emulator.call(lambda: emulator.controllers.kubelet.local_pids()) == {}
    assert not marker.exists()
    # the same pod in (annotated) process mode does run it: the check above would see it
    annotated_raw.post(f"{NS}/pods", _marker_pod("sneaky", marker))
    wait_until(marker.exists, what="the process of the annotated pod")


def test_local_processes_get_their_own_ip_env_and_graceful_stop(
    annotated_raw: RawClient,
) -> None:
    raw = annotated_raw
    script = (
        "import os, signal, sys, time\n"
        "print('ip', os.environ['POD_IP'], 'name', os.environ['NAME'], flush=True)\n"
        "def stop(*_):\n    print('got SIGTERM', flush=True)\n    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(60)\n"
    )
    pod = _pod("proc", restartPolicy="Never")
    pod["metadata"]["annotations"] = {"emulator.aiinfn.dev/outcome": "process"}
    pod["spec"]["containers"][0].update(
        {
            "command": [sys.executable, "-c", script],
            "env": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "BASE", "value": "pod"},
                {"name": "NAME", "value": "$(BASE)-$(metadata)-$$(BASE)"},
            ],
        }
    )
    raw.post(f"{NS}/pods", pod)
    ip = wait_until(lambda: _get(raw, "proc")["status"].get("podIP"))
    wait_until(lambda: "ip" in str(raw.get(f"{NS}/pods/proc/log")[1]), what="process output")
    assert raw.get(f"{NS}/pods/proc/log")[1].startswith(f"ip {ip} name pod-$(metadata)-$(BASE)")
    raw.request("DELETE", f"{NS}/pods/proc", {"gracePeriodSeconds": 10})
    wait_until(lambda: raw.get(f"{NS}/pods/proc")[0] == 404, what="graceful stop")


def test_processes_that_ignore_sigterm_are_killed_after_the_grace_period(
    annotated_raw: RawClient,
) -> None:
    raw = annotated_raw
    script = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"
    pod = _pod("stubborn", restartPolicy="Never", terminationGracePeriodSeconds=1)
    pod["metadata"]["annotations"] = {"emulator.aiinfn.dev/outcome": "process"}
    pod["spec"]["containers"][0]["command"] = [sys.executable, "-c", script]
    raw.post(f"{NS}/pods", pod)
    wait_until(lambda: _get(raw, "stubborn")["status"]["phase"] == "Running")
    raw.request("DELETE", f"{NS}/pods/stubborn")
    wait_until(lambda: raw.get(f"{NS}/pods/stubborn")[0] == 404, timeout=8, what="SIGKILL")


# -- Job controller --------------------------------------------------------------------------
def _job(name: str, outcome: str = "succeed", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            **spec,
            "template": {
                "metadata": {"annotations": {"emulator.aiinfn.dev/outcome": outcome}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]},
            },
        },
    }


def _job_state(raw: RawClient, name: str) -> dict[str, Any]:
    return dict(raw.get(f"{JOBS}/{name}")[1])


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next(
        (
            c
            for c in job.get("status", {}).get("conditions") or []
            if c["type"] == kind and c["status"] == "True"
        ),
        None,
    )


def test_job_runs_to_completion(raw: RawClient) -> None:
    raw.post(JOBS, _job("work", completions=3, parallelism=2))
    done = wait_until(lambda: _condition(_job_state(raw, "work"), "Complete"), what="Complete")
    assert done["reason"] == "CompletionsReached"
    job = _job_state(raw, "work")
    assert job["status"]["succeeded"] == 3 and "completionTime" in job["status"]
    assert _condition(job, "SuccessCriteriaMet")
    _, events, _ = raw.get(f"{NS}/events?fieldSelector=involvedObject.name%3Dwork")
    assert sum(e["reason"] == "SuccessfulCreate" for e in events["items"]) == 3


def test_indexed_job_gives_each_pod_its_index(raw: RawClient) -> None:
    raw.post(
        JOBS, _job("idx", outcome="run", completions=3, parallelism=3, completionMode="Indexed")
    )
    pods = wait_until(
        lambda: len(p := raw.get(f"{NS}/pods?labelSelector=job-name%3Didx")[1]["items"]) == 3 and p
    )
    indexes = sorted(
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods
    )
    assert indexes == ["0", "1", "2"]
    env = pods[0]["spec"]["containers"][0]["env"][0]
    assert env["name"] == "JOB_COMPLETION_INDEX"
    assert {p["spec"]["hostname"] for p in pods} == {"idx-0", "idx-1", "idx-2"}


def test_backoff_limit_fails_the_job(raw: RawClient) -> None:
    raw.post(JOBS, _job("flaky", outcome="fail", backoffLimit=1))
    failed = wait_until(lambda: _condition(_job_state(raw, "flaky"), "Failed"), what="Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert _job_state(raw, "flaky")["status"]["failed"] == 2


def test_suspend_and_resume(raw: RawClient) -> None:
    raw.post(JOBS, _job("queued", outcome="run", suspend=True))
    wait_until(lambda: _condition(_job_state(raw, "queued"), "Suspended"), what="Suspended")
    assert not raw.get(f"{NS}/pods?labelSelector=job-name%3Dqueued")[1]["items"]
    raw.request(
        "PATCH",
        f"{JOBS}/queued",
        {"spec": {"suspend": False}},
        content_type="application/merge-patch+json",
    )
    wait_until(lambda: _job_state(raw, "queued")["status"].get("active") == 1, what="resumed")
    raw.request(
        "PATCH",
        f"{JOBS}/queued",
        {"spec": {"suspend": True}},
        content_type="application/merge-patch+json",
    )
    wait_until(
        lambda: not raw.get(f"{NS}/pods?labelSelector=job-name%3Dqueued")[1]["items"],
        what="suspending removes active pods",
    )


def test_ttl_after_finished_deletes_the_job_and_its_pods(raw: RawClient) -> None:
    raw.post(JOBS, _job("short", ttlSecondsAfterFinished=0))
    wait_until(lambda: raw.get(f"{JOBS}/short")[0] == 404, what="TTL deletion")
    wait_until(lambda: not raw.get(f"{NS}/pods?labelSelector=job-name%3Dshort")[1]["items"])


def test_active_deadline(raw: RawClient) -> None:
    raw.post(JOBS, _job("slow", outcome="run", activeDeadlineSeconds=1))
    failed = wait_until(lambda: _condition(_job_state(raw, "slow"), "Failed"), timeout=8)
    assert failed["reason"] == "DeadlineExceeded"
