"""Policy and Job builder on real pod manifests (the spawner's golden pods)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.job import job_manifest, sandbox_configmap
from aiinfn_hub.bunshin.job_view import job_status, job_view
from aiinfn_hub.bunshin.policy import JobContext, plan_job
from aiinfn_hub.bunshin.request import parse_request
from aiinfn_hub.config import load_platform_config
from aiinfn_hub.platform.entitlements import UserContext

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
CONFIG = load_platform_config(ROOT / "examples" / "platform.yaml")


def pod(case: str) -> dict[str, Any]:
    """A golden notebook pod of user dana, as the API server would return it running."""
    manifest: dict[str, Any] = json.loads((GOLDEN / f"pod-{case}.json").read_text())
    manifest["metadata"] |= {"uid": "0b7c-uid", "namespace": "jupyterhub"}
    manifest["status"] = {"phase": "Running"}
    return manifest


def context(*groups: str, offload: bool = False, active: int = 0) -> JobContext:
    return JobContext(UserContext("dana", frozenset(groups)), CONFIG, offload, active)


def plan(body: dict[str, Any], ctx: JobContext, case: str = "cpu-only") -> Any:
    return plan_job(parse_request(body), ctx, pod(case), "")


def test_the_clone_keeps_image_workdir_safe_env_and_current_volumes() -> None:
    p = plan({"command": ["python", "run.py"], "env": {"SEED": "7"}}, context("cms"))
    assert (
        p.image == "harbor.cloud.infn.it/ai-infn/base:2026.11" and p.working_dir == "/home/jovyan"
    )
    names = [e["name"] for e in p.env]
    assert "SEED" in names and "HOME" in names and "SCRATCH" in names
    assert not [n for n in names if n.startswith(("JUPYTERHUB_", "JPY_", "MEM_", "CPU_"))]
    volumes = {v["name"]: v for v in p.volumes}
    cvmfs = {v["name"] for v in pod("cpu-only")["spec"]["volumes"] if "csi" in v}
    assert len(cvmfs) == 3 and set(volumes) == {"platform-fs", "scratch", *cvmfs}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {"sizeLimit": "10Gi"}}
    paths = {m["mountPath"] for m in p.mounts}
    assert "/home/jovyan/projects/cms" in paths and "/home/jovyan/buckets" not in paths
    assert p.supplemental_gids == [5002] and p.project == "cms"
    assert p.security_context["runAsUser"] == 100001  # the server's own (per-user) id
    assert p.security_context["capabilities"] == {"drop": ["ALL"]}


def test_a_project_left_since_the_server_started_is_not_cloned() -> None:
    p = plan({"command": ["x"]}, context("cms", "qml"), "cpu-only")
    assert "/home/jovyan/projects/cms" in {m["mountPath"] for m in p.mounts}
    p = plan({"command": ["x"], "project": "qml"}, context("qml"))
    assert "/home/jovyan/projects/cms" not in {m["mountPath"] for m in p.mounts}
    assert p.supplemental_gids == [5004]


def test_the_servers_accelerator_is_the_default_and_limits_apply() -> None:
    p = plan({"command": ["x"]}, context("ml-infn"), "t4-pair")
    assert p.accelerator is not None and (p.accelerator.name, p.count) == ("t4", 2)
    p = plan({"command": ["x"], "accelerator": None}, context("ml-infn"), "t4-pair")
    assert p.accelerator is None
    with pytest.raises(BunshinError, match="count must be between 1 and 2 for t4"):
        plan({"command": ["x"], "accelerator": {"name": "t4", "count": 3}}, context("ml-infn"))


@pytest.mark.parametrize(
    ("body", "ctx", "status", "message"),
    [
        ({"command": ["x"]}, context("cms", active=20), 409, "you have 20 queued or running"),
        ({"command": ["x"]}, context(), 403, "you are in no project"),
        ({"command": ["x"], "completions": 101}, context("cms"), 422, "completions: at most 100"),
        ({"command": ["x"], "parallelism": 2}, context("cms"), 422, "parallelism: at most 1"),
        ({"command": ["x"], "maxRuntimeSeconds": 10**6}, context("cms"), 422, "at most 86400"),
        ({"command": ["x"], "memory": "1Ti"}, context("cms"), 422, "choose one of: 4Gi, 8Gi"),
        ({"command": ["x"], "memory": "lots"}, context("cms"), 422, "memory 'lots' is not"),
        ({"command": ["x"], "cpu": 9}, context("cms"), 422, "cpu 9 is not allowed; choose"),
        ({"command": ["x"], "sandbox": {"f": "x" * 300000}}, context("cms"), 422, "sandbox:"),
        ({"command": ["x"], "offload": True}, context("cms"), 403, "may not offload"),
    ],
)
def test_requests_outside_the_rules_are_refused(
    body: dict[str, Any], ctx: JobContext, status: int, message: str
) -> None:
    with pytest.raises(BunshinError) as exc:
        plan(body, ctx)
    assert exc.value.status == status and message in exc.value.message


def test_offload_without_storage_goes_with_sandbox_and_tolerates_virtual_nodes() -> None:
    # (what each folder becomes, or why it blocks, is in test_offload_juicefs.py)
    p = plan({"command": ["x"], "offload": True, "storage": False}, context("cms", offload=True))
    assert p.volumes == [] and p.offload
    job = job_manifest(p, CONFIG, "bunshin-dana-abc123")
    tolerations = job["spec"]["template"]["spec"]["tolerations"]
    assert {
        "key": "virtual-node.interlink/no-schedule",
        "operator": "Exists",
        "effect": "NoSchedule",
    } in tolerations


def test_someone_elses_or_a_stopped_pod_is_not_cloned() -> None:
    other = pod("cpu-only")
    other["metadata"]["annotations"]["hub.jupyter.org/username"] = "eve"
    with pytest.raises(BunshinError) as exc:
        plan_job(parse_request({"command": ["x"]}), context("cms"), other, "")
    assert exc.value.status == 403
    stopped = pod("cpu-only")
    stopped["status"]["phase"] = "Pending"
    with pytest.raises(BunshinError) as exc:
        plan_job(parse_request({"command": ["x"]}), context("cms"), stopped, "")
    assert exc.value.status == 409


@pytest.mark.parametrize(
    ("case", "project", "body"),
    [
        ("cpu-only", "cms", {"command": ["python", "run.py"], "sandbox": {"run.py": "print(1)"}}),
        (
            "t4-pair",
            "ml-infn",
            {"command": ["python", "sweep.py"], "completions": 4, "parallelism": 2},
        ),
    ],
)
def test_golden_job_manifests_pass_the_official_schema(
    case: str, project: str, body: dict[str, Any]
) -> None:
    p = plan(body, context(project), case)
    job = job_manifest(p, CONFIG, f"bunshin-dana-{case}")
    kubernetes_validate.validate(copy.deepcopy(job), "1.33.0", strict=True)
    spec = job["spec"]
    assert spec["suspend"] is True and spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "Ignore"
    resources = spec["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"]
    assert ("completionMode" in spec) == (body.get("completions", 1) > 1)
    path = GOLDEN / f"job-{case}.json"
    text = json.dumps(job, indent=2, sort_keys=True) + "\n"
    if os.environ.get("AIINFN_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path.name} is missing: create it with AIINFN_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs: rerun with AIINFN_UPDATE_GOLDEN=1"
    if p.sandbox:
        job["metadata"]["uid"] = "1234"
        configmap = sandbox_configmap(p, job)
        kubernetes_validate.validate(configmap, "1.33.0", strict=True)
        assert configmap["metadata"]["ownerReferences"][0]["uid"] == "1234"


def test_status_follows_job_workload_and_pods() -> None:
    job: dict[str, Any] = {"metadata": {"name": "j", "annotations": {}}, "spec": {"suspend": True}}
    assert job_status(job, None, [])[0] == "queued"
    admitted = {"status": {"conditions": [{"type": "Admitted", "status": "True"}]}}
    assert job_status(job, admitted, [])[0] == "admitted"
    job["spec"]["suspend"] = False
    assert job_status(job, admitted, [])[0] == "admitted"
    assert job_status(job, admitted, [{"status": {"phase": "Running"}}])[0] == "running"
    # a mount sidecar that keeps failing: the job waits, and the user is told why
    stuck = {
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                {
                    "name": "juicefs",
                    "restartCount": 3,
                    "lastState": {"terminated": {"exitCode": 1}},
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                }
            ],
        }
    }
    status, reason = job_status(job, admitted, [stuck])
    assert status == "admitted" and "the job's file system does not come up" in reason
    assert "tried 4 times, last exit code 1" in reason
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    assert job_status(job, admitted, [])[0] == "succeeded"
    job["status"] = {"conditions": [{"type": "Failed", "status": "True", "message": "oom"}]}
    assert job_status(job, admitted, []) == ("failed", "oom")
    job["metadata"]["annotations"]["aiinfn.infn.it/cancelled"] = "dana"
    assert job_status(job, admitted, [])[0] == "cancelled"
    view = job_view(job, [], None)
    assert view["status"] == "cancelled" and view["accelerator"] is None


def test_the_pod_must_be_the_one_the_hub_started() -> None:
    request = parse_request({"command": ["x"]})
    assert plan_job(request, context("cms"), pod("cpu-only"), "", "0b7c-uid").source_uid == (
        "0b7c-uid"
    )
    with pytest.raises(BunshinError) as exc:
        plan_job(request, context("cms"), pod("cpu-only"), "", "another-uid")
    assert exc.value.status == 409 and "not the one the hub started" in exc.value.message


def test_read_only_comes_from_the_storage_plan_now_not_from_the_pod() -> None:
    """dana started her server as a maintainer of the environments area, then left the
    maintainers: her jobs mount it read-only at once, as her next server would."""
    server = pod("cpu-only")
    (notebook,) = [c for c in server["spec"]["containers"] if c["name"] == "notebook"]
    (envs,) = [m for m in notebook["volumeMounts"] if m["mountPath"] == "/envs"]
    envs["readOnly"] = False
    p = plan_job(parse_request({"command": ["x"]}), context("cms"), server, "")
    (cloned,) = [m for m in p.mounts if m["mountPath"] == "/envs"]
    assert cloned["readOnly"] is True
    # and a maintainer now gets the write access the running pod lacked
    p = plan_job(
        parse_request({"command": ["x"]}), context("cms", "env-maintainers"), pod("cpu-only"), ""
    )
    (cloned,) = [m for m in p.mounts if m["mountPath"] == "/envs"]
    assert cloned["readOnly"] is False


def test_long_env_values_are_refused_with_the_limit() -> None:
    with pytest.raises(BunshinError) as exc:
        plan({"command": ["x"], "env": {"BIG": "x" * 4097, "OK": "y"}}, context("cms"))
    assert exc.value.status == 422 and "env: BIG: at most 4096 bytes" in exc.value.message
    assert plan({"command": ["x"], "env": {"FIT": "x" * 4096}}, context("cms")).env


def test_a_job_never_runs_as_root_even_from_a_pod_that_did_not_say() -> None:
    source = pod("cpu-only")
    for holder in (source["spec"], *source["spec"]["containers"]):
        (holder.get("securityContext") or {}).pop("runAsNonRoot", None)
        (holder.get("securityContext") or {}).pop("runAsUser", None)
    p = plan_job(parse_request({"command": ["id"]}), context("cms"), source, "")
    assert p.security_context["runAsNonRoot"] is True and "runAsUser" not in p.security_context


def test_a_job_is_checked_by_the_rules_of_the_spawn_form() -> None:
    """Same question, same answer: Bunshin asks the entitlements the form asks."""
    # equal quantities are one choice, written as the configuration writes it
    assert plan({"command": ["x"], "memory": "8192Mi"}, context("cms")).memory == "8Gi"
    # a job asks for a minimum and gets the smallest listed choice that meets it, as a
    # server would (a workflow's 3 threads and 2000 MB: 4 cores and 4Gi)
    fitted = plan({"command": ["x"], "cpu": 3, "memory": "2000M"}, context("cms"))
    assert (fitted.cpu, fitted.memory) == (4.0, "4Gi")
    # a GPU model needs a CUDA image: the cpu-only server runs the base image
    with pytest.raises(BunshinError, match="image 'base' has no CUDA"):
        plan({"command": ["x"], "accelerator": {"name": "t4", "count": 1}}, context("ml-infn"))
    # an image the user may no longer run is not cloned
    foreign = pod("cpu-only")
    foreign["spec"]["containers"][0]["image"] = "docker.io/evil/miner:1"
    with pytest.raises(BunshinError, match="no longer offered to you"):
        plan_job(parse_request({"command": ["x"]}), context("cms"), foreign, "")
