"""Jobs run in a namespace of their own: the service refuses the hub's and the servers', and a
clone takes along only what can follow it there (never a Secret of the user's)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.namespaces import (
    NamespaceError,
    check_jobs_namespace,
    foreign_references,
    protected_namespaces,
)
from aiinfn_hub.bunshin.policy import JobContext, plan_job
from aiinfn_hub.bunshin.request import parse_request
from aiinfn_hub.config import PlatformConfig, validate_platform_config
from aiinfn_hub.platform.entitlements import UserContext
from aiinfn_hub.platform.storage import storage_plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())


def config(jobs: dict[str, Any] | None = None, **storage: Any) -> PlatformConfig:
    data = copy.deepcopy(EXAMPLE)
    data["jobs"].update(jobs or {})
    for key, value in storage.items():
        data["storage"][key] = {**data["storage"][key], **value}
    return validate_platform_config(data)


def pod() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((ROOT / "tests/golden/pod-cpu-only.json").read_text())
    manifest["metadata"] |= {"uid": "0b7c-uid", "namespace": "jupyterhub"}
    manifest["status"] = {"phase": "Running"}
    return manifest


def plan(cfg: PlatformConfig, server: dict[str, Any], **body: Any) -> Any:
    ctx = JobContext(UserContext("dana", frozenset({"cms"})), cfg, False, 0)
    return plan_job(parse_request({"command": ["x"], **body}), ctx, server, "")


def test_the_hubs_and_the_servers_namespaces_are_learnt_from_the_environment(
    tmp_path: Path,
) -> None:
    account = tmp_path / "namespace"
    assert protected_namespaces({}, account) == {
        "jupyterhub": "the servers' namespace (AIINFN_NAMESPACE)"
    }
    account.write_text("hub-ns\n")
    found = protected_namespaces({"AIINFN_NAMESPACE": "users", "POD_NAMESPACE": "hub-pod"}, account)
    assert set(found) == {"users", "hub-pod", "hub-ns"}
    assert "POD_NAMESPACE" in found["hub-pod"] and str(account) in found["hub-ns"]


@pytest.mark.parametrize("namespace", ["jupyterhub", "hub-ns"])
def test_the_hubs_or_the_servers_namespace_is_refused_unless_allowed(namespace: str) -> None:
    protected = {"jupyterhub": "the servers' namespace", "hub-ns": "the hub's namespace"}
    with pytest.raises(NamespaceError) as exc:
        check_jobs_namespace(config({"namespace": namespace}).jobs, protected)
    assert f"jobs.namespace is {namespace!r}" in str(exc.value)
    assert "allowHubNamespace" in str(exc.value) and protected[namespace] in str(exc.value)
    allowed = config({"namespace": namespace, "allowHubNamespace": True}).jobs
    check_jobs_namespace(allowed, protected)
    check_jobs_namespace(config().jobs, protected)  # bunshin: its own


def test_the_service_refuses_to_start_in_the_servers_namespace(tmp_path: Path) -> None:
    data = copy.deepcopy(EXAMPLE)
    data["jobs"]["namespace"] = "users"
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {
        "PATH": os.environ["PATH"],
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",  # never reached
        "JUPYTERHUB_API_TOKEN": "t",
        "AIINFN_NAMESPACE": "users",
        "KUBECONFIG": str(tmp_path / "none"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "aiinfn_hub.bunshin", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "jobs.namespace is 'users', which is the servers' namespace" in done.stderr


def test_what_names_an_object_of_the_pods_namespace_is_found() -> None:
    assert foreign_references({"name": "a", "nfs": {"server": "s", "path": "/"}}) == []
    assert foreign_references({"name": "a", "emptyDir": {}}) == []
    assert foreign_references({"name": "a", "ephemeral": {"volumeClaimTemplate": {}}}) == []
    assert foreign_references({"name": "a", "persistentVolumeClaim": {"claimName": "c"}}) == [
        "a PersistentVolumeClaim"
    ]
    csi = {"name": "b", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "tok"}}}
    assert foreign_references(csi) == ["a Secret"]
    projected = {"name": "p", "projected": {"sources": [{"configMap": {"name": "x"}}]}}
    assert foreign_references(projected) == ["a ConfigMap"]


def test_folders_on_a_claim_of_the_servers_namespace_refuse_the_clone_with_their_paths() -> None:
    cfg = config(nfs={"claimName": "platform-fs", "server": ""})
    with pytest.raises(BunshinError) as exc:
        plan(cfg, pod())
    message = exc.value.message
    assert exc.value.status == 422
    assert "cannot follow the job into the jobs' namespace 'bunshin'" in message
    assert "/home/jovyan" in message and "a PersistentVolumeClaim" in message
    assert '"storage": false' in message
    assert plan(cfg, pod(), storage=False).volumes == []
    # jobs next to the servers (explicitly allowed) keep the claim
    same = config(
        {"namespace": "jupyterhub", "allowHubNamespace": True}, nfs={"claimName": "c", "server": ""}
    )
    kept = plan(same, pod())
    assert {"name": "platform-fs", "persistentVolumeClaim": {"claimName": "c"}} in kept.volumes


def test_buckets_and_the_users_token_never_follow_a_job() -> None:
    cfg = config(buckets={"mode": "csi"})
    buckets = storage_plan(
        cfg, "dana", frozenset({"cms"}), scratch_size=None, token_secret="tok-dana", user_number=3
    )
    server = pod()
    (notebook,) = [c for c in server["spec"]["containers"] if c["name"] == "notebook"]
    for volume in buckets.volumes:
        if volume["name"].startswith("bucket"):
            server["spec"]["volumes"].append(volume)
    notebook["volumeMounts"] += [m for m in buckets.mounts if m["name"].startswith("bucket")]
    assert any("nodePublishSecretRef" in json.dumps(v) for v in server["spec"]["volumes"])
    p = plan(cfg, server)
    assert p.volumes and not [v for v in p.volumes if foreign_references(v)]
    assert not [m for m in p.mounts if m["name"].startswith("bucket")]
    assert "tok-dana" not in json.dumps(p.volumes)


def test_the_hub_tells_the_service_where_the_servers_are(tmp_path: Path) -> None:
    from traitlets.config import Config

    from aiinfn_hub.hub_environment import configure_from_environment

    c = Config()
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    c.JupyterHub.custom_scopes = {}
    env = {
        "AIINFN_PLATFORM_CONFIG": str(ROOT / "examples" / "platform.yaml"),
        "AIINFN_IAM_ISSUER": "https://iam.example.org/",
        "AIINFN_IAM_CLIENT_SECRET_FILE": str(tmp_path / "secret"),
        "AIINFN_BUNSHIN_MANAGED": "1",
        "AIINFN_NAMESPACE": "users",
        "POD_NAMESPACE": "hub",
    }
    configure_from_environment(c, env)
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "bunshin"]
    assert service["environment"]["AIINFN_NAMESPACE"] == "users"
    assert service["environment"]["POD_NAMESPACE"] == "hub"
    assert c.AIInfnSpawner.namespace == "users"
