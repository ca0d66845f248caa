"""Offloaded jobs get JuiceFS folders in place of the platform file system (pure parts)."""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.job import job_manifest
from aiinfn_hub.bunshin.juicefs import credentials_secret
from aiinfn_hub.bunshin.passwords import read_password
from aiinfn_hub.bunshin.policy import JobContext, plan_job
from aiinfn_hub.bunshin.request import parse_request
from aiinfn_hub.config import PlatformConfig, PlatformConfigError, validate_platform_config
from aiinfn_hub.platform.entitlements import UserContext

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
EXAMPLE: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
JUICEFS = {
    "metadataUrl": "rediss://juicefs-meta.example.org:6379/{project}",
    "environments": "envs",
}


def config(
    juicefs: dict[str, Any] | None = JUICEFS, sites_cvmfs: str = "refuse", **storage: Any
) -> PlatformConfig:
    """The example with ``juicefs`` for offloaded jobs and ``storage`` keys replaced (None:
    removed); ``sites_cvmfs`` is ``jobs.offload.cvmfs``."""
    data = copy.deepcopy(EXAMPLE)
    data.setdefault("jobs", {}).setdefault("offload", {})["cvmfs"] = sites_cvmfs
    if juicefs is None:
        data["jobs"]["offload"].pop("juicefs", None)
    else:
        data["jobs"]["offload"]["juicefs"] = juicefs
    data["storage"].update(storage)
    for key in [k for k, v in storage.items() if v is None]:
        data["storage"].pop(key)
    return validate_platform_config(data)


def pod() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((GOLDEN / "pod-cpu-only.json").read_text())
    manifest["metadata"] |= {"uid": "0b7c-uid", "namespace": "jupyterhub"}
    manifest["status"] = {"phase": "Running"}
    return manifest


def offload(cfg: PlatformConfig, **body: Any) -> Any:
    ctx = JobContext(UserContext("dana", frozenset({"cms", "ml-infn"})), cfg, True, 0)
    request = parse_request({"command": ["python", "fit.py"], "offload": True, **body})
    return plan_job(request, ctx, pod(), "")


def test_home_project_and_mapped_areas_become_juicefs_folders() -> None:
    cfg = config(cvmfs=None, shared=None)
    p = offload(cfg, project="cms")
    by_path = {m["mountPath"]: m for m in p.mounts}
    assert by_path["/home/jovyan"] == {
        "name": "juicefs",
        "mountPath": "/home/jovyan",
        "subPath": "mnt/homes/dana",
    }
    assert by_path["/home/jovyan/projects/cms"]["subPath"] == "mnt/projects/cms"
    assert by_path["/envs"] == {
        "name": "juicefs",
        "mountPath": "/envs",
        "subPath": "mnt/envs",
        "readOnly": True,
    }
    # the job works for cms: the other project's folder does not go along
    assert "/home/jovyan/projects/ml-infn" not in by_path
    assert by_path["/scratch"]["name"] == "scratch"  # emptyDir: portable as it is
    assert {v["name"] for v in p.volumes} == {"scratch", "juicefs", "juicefs-credentials"}
    assert not any("nfs" in v or "persistentVolumeClaim" in v for v in p.volumes)
    assert p.juicefs.secret == "bunshin-juicefs-cms"
    assert p.juicefs.folders == [
        "homes:0:0:0755",
        "homes/dana:100001:100:0700:owned",  # the user id dana's server runs as
        "projects:0:0:0755",
        "projects/cms:0:5002:2770",
        "envs:0:0:0755",
    ]


@pytest.mark.parametrize(
    ("pod_uid", "container_uid", "owner"),
    [(100042, None, 100042), (1000, 100042, 100042), (None, None, 1000)],
)
def test_the_juicefs_home_belongs_to_the_user_id_the_server_runs_as(
    pod_uid: int | None, container_uid: int | None, owner: int
) -> None:
    """Each user runs as their own id (the pod's, else its notebook container's); a server
    without one gets ``storage.home.uid`` (1000 in the example)."""
    server = pod()
    server["spec"]["securityContext"] = {"runAsUser": pod_uid} if pod_uid else {}
    (notebook,) = [c for c in server["spec"]["containers"] if c["name"] == "notebook"]
    notebook["securityContext"].pop("runAsUser", None)
    if container_uid:
        notebook["securityContext"]["runAsUser"] = container_uid
    cfg = config(cvmfs=None, shared=None)
    ctx = JobContext(UserContext("dana", frozenset({"cms"})), cfg, True, 0)
    request = parse_request({"command": ["x"], "offload": True, "project": "cms"})
    p = plan_job(request, ctx, server, "")
    assert f"homes/dana:{owner}:100:0700:owned" in p.juicefs.folders
    if pod_uid or container_uid:  # the job's container runs as the server does
        assert p.security_context["runAsUser"] == owner
    else:
        assert "runAsUser" not in p.security_context


def test_areas_without_a_stand_in_still_refuse_the_offload_with_their_paths() -> None:
    with pytest.raises(BunshinError) as exc:
        offload(config({"metadataUrl": "redis://meta:6379/1"}, cvmfs=None), project="cms")
    assert exc.value.status == 422
    assert "/envs (nfs)" in exc.value.message and "/shared (nfs)" in exc.value.message
    assert "/home/jovyan (nfs)" not in exc.value.message  # the home has a stand-in
    with pytest.raises(BunshinError) as exc:
        offload(config(shared=None), project="cms")  # CVMFS has none unless the sites have it
    assert "/cvmfs/sft.cern.ch (csi)" in exc.value.message and "/envs" not in exc.value.message
    with pytest.raises(BunshinError) as exc:  # without JuiceFS: every NFS folder is listed
        offload(config(None), project="cms")
    message = exc.value.message
    assert "/home/jovyan (nfs)" in message and "/home/jovyan/projects/cms (nfs)" in message
    assert "/envs (nfs)" in message and "/scratch" not in message  # emptyDir scratch may go
    assert '"storage": false' in message


def test_sites_with_cvmfs_give_offloaded_jobs_their_own_read_only() -> None:
    cfg = config(sites_cvmfs="site", shared=None)
    p = offload(cfg, project="cms")
    by_path = {m["mountPath"]: m for m in p.mounts}
    assert by_path["/cvmfs/cms.cern.ch"]["readOnly"] is True
    volume = next(v for v in p.volumes if v["name"] == by_path["/cvmfs/cms.cern.ch"]["name"])
    assert volume == {
        "name": volume["name"],
        "hostPath": {"path": "/cvmfs/cms.cern.ch", "type": "Directory"},
    }
    assert not any("csi" in v for v in p.volumes)
    kubernetes_validate.validate(job_manifest(p, cfg, "bunshin-dana-cvmfs"), "1.33.0", strict=True)


def test_the_offloaded_job_mounts_through_a_native_sidecar_and_passes_the_schema() -> None:
    cfg = config(cvmfs=None, shared=None)
    p = offload(cfg, project="cms", storage=True)
    job = job_manifest(p, cfg, "bunshin-dana-offload")
    kubernetes_validate.validate(copy.deepcopy(job), "1.33.0", strict=True)
    spec = job["spec"]["template"]["spec"]
    (sidecar,) = spec["initContainers"]
    assert sidecar["restartPolicy"] == "Always" and sidecar["securityContext"]["privileged"]
    assert sidecar["startupProbe"]["exec"]["command"] == ["test", "-f", "/jfs/ready"]
    assert sidecar["args"] == p.juicefs.folders
    assert {"name": "juicefs-credentials", "mountPath": "/etc/juicefs", "readOnly": True} in (
        sidecar["volumeMounts"]
    )
    main = spec["containers"][0]
    assert main["securityContext"]["privileged"] is False
    assert "juicefs-credentials" not in {m["name"] for m in main["volumeMounts"]}
    assert not any("PASSWORD" in e["name"] for c in (main, sidecar) for e in c.get("env", []))
    credentials = next(v for v in spec["volumes"] if v["name"] == "juicefs-credentials")
    assert credentials["secret"] == {"secretName": "bunshin-juicefs-cms", "defaultMode": 0o400}
    path = GOLDEN / "job-offload-juicefs.json"
    text = json.dumps(job, indent=2, sort_keys=True) + "\n"
    if os.environ.get("AIINFN_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs: rerun with AIINFN_UPDATE_GOLDEN=1"


def test_jobs_that_stay_get_no_juicefs() -> None:
    cfg = config(cvmfs=None, shared=None)
    ctx = JobContext(UserContext("dana", frozenset({"cms"})), cfg, True, 0)
    p = plan_job(parse_request({"command": ["x"]}), ctx, pod(), "")
    assert p.juicefs is None and "initContainers" not in json.dumps(job_manifest(p, cfg, "j"))
    assert any("nfs" in v for v in p.volumes)


def test_the_credentials_secret_holds_the_url_and_only_a_given_password() -> None:
    juicefs = config(cvmfs=None, shared=None).jobs.offload.juicefs
    assert juicefs is not None
    secret = credentials_secret(juicefs, "cms", "jupyterhub", "s3cr3t", "bunshin")
    kubernetes_validate.validate(copy.deepcopy(secret), "1.33.0", strict=True)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "metaurl": "rediss://juicefs-meta.example.org:6379/cms",
        "meta-password": "s3cr3t",
    }
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "bunshin"
    bare = credentials_secret(juicefs, "qml", "jupyterhub", None, "bunshin")
    assert set(bare["data"]) == {"metaurl"}


def test_the_password_file_of_the_project_wins_over_the_shared_one(tmp_path: Path) -> None:
    assert read_password(tmp_path, "cms") is None
    (tmp_path / "meta-password").write_text("shared\n")
    assert read_password(tmp_path, "cms") == "shared"
    (tmp_path / "cms.meta-password").write_text("only-cms")
    assert read_password(tmp_path, "cms") == "only-cms"
    assert read_password(tmp_path, "qml") == "shared"


@pytest.mark.parametrize(
    ("juicefs", "message"),
    [
        ({"metadataUrl": "redis://:pw@meta:6379/1"}, "must not hold a password"),
        ({"metadataUrl": "meta:6379"}, "expected a JuiceFS metadata URL"),
        ({"metadataUrl": "redis://m/1", "home": "../homes/{user}"}, "without '..'"),
        ({"metadataUrl": "redis://m/1", "home": "homes/{username}"}, "placeholders"),
        ({"metadataUrl": "redis://m/1", "credentialsDir": "etc/x"}, "absolute"),
        ({"metadataUrl": "postgres://m/jfs?password=x"}, "must not hold a password"),
        ({"metadataUrl": "redis://m/1", "home": "homes:{user}"}, "letters, digits"),
        ({"metadataUrl": "redis://m/1", "project": "p/{project} x"}, "letters, digits"),
        ({"metadataUrl": "redis://m/1", "home": "homes/all"}, "must contain {user}"),
        ({"metadataUrl": "redis://m/1", "project": "projects"}, "must contain {project}"),
    ],
)
def test_bad_juicefs_settings_name_the_key(juicefs: dict[str, Any], message: str) -> None:
    with pytest.raises(PlatformConfigError) as exc:
        config(juicefs)
    assert "jobs.offload.juicefs" in str(exc.value) and message in str(exc.value)
