"""Offloaded Bunshin jobs with JuiceFS, end to end: a real hub and Bunshin service, a server
with an NFS home (a host folder in the emulated cluster), and a real JuiceFS file system
(redis-server for metadata, the local S3 for data) that the job's native sidecar mounts with
the real ``juicefs`` client over FUSE, with the credentials Secret the service writes."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from bunshin_helpers import (
    JOBS_NAMESPACE,
    User,
    admit,
    bunshin_config,
    status_of,
    wait_for_bunshin,
)
from iam_platform import NAMESPACE, Hub, platform_with_storage, running_platform, wait_for

from aiinfn_hub.config import load_platform_config
from aiinfn_hub.dev.emulator.controllers.volumes import host_path
from aiinfn_hub.dev.juicefs_store import LocalJuiceFS, missing_tools
from aiinfn_hub.dev.s3_server import LocalS3
from aiinfn_hub.dev.virtual_node import NAME, TYPE_LABEL, interlink_node

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not Path("/dev/fuse").exists() or not shutil.which("fusermount3"),
        reason="mounting JuiceFS needs root and FUSE (/dev/fuse, fusermount3)",
    ),
    pytest.mark.skipif(bool(missing_tools()), reason=f"missing: {', '.join(missing_tools())}"),
]


def platform(folder: Path, juicefs: LocalJuiceFS) -> Path:
    storage = {
        "nfs": {"server": "nfs.local", "path": "/exports"},
        "home": {"uid": 1000, "gid": 100},
        "scratch": {"sizeChoices": ["1Gi"]},
    }
    path = platform_with_storage(folder, storage)
    data = yaml.safe_load(path.read_text())
    data["jobs"] = {
        "offload": {
            "nodeSelector": {TYPE_LABEL: "virtual-kubelet"},
            "localFirst": False,  # offloaded: always remote
            "juicefs": {
                "metadataUrl": juicefs.metadata_url,
                "credentialsDir": str(juicefs.credentials_dir),
            },
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, LocalJuiceFS]]:
    state = tmp_path_factory.mktemp("offload")
    with (
        LocalS3(state / "s3") as s3,
        LocalJuiceFS(state / "juicefs", s3.endpoint) as juicefs,
        running_platform(
            state,
            platform=lambda folder: platform(folder / "config", juicefs),
            extra_config=bunshin_config,
            extra_nodes=[interlink_node(load_platform_config(platform(state / "node", juicefs)))],
        ) as hub,
    ):
        wait_for_bunshin(hub)
        yield hub, juicefs


def run_offloaded(hub: Hub, user: User, script: str) -> dict[str, Any]:
    """Submit an offloaded job, play Kueue, wait for its end; the job object."""
    response = user.call("POST", "jobs", json={"command": ["sh", "-c", script], "offload": True})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    admit(hub, job_id)
    try:
        wait_for(lambda: status_of(user, job_id) in ("succeeded", "failed"), 90, f"job {job_id}")
    except AssertionError:
        pods = [
            p
            for p in hub.emulator.objects("Pod", JOBS_NAMESPACE)
            if job_id in p["metadata"]["name"]
        ]
        raise AssertionError(f"job {job_id} did not end: pods {pods}") from None
    job: dict[str, Any] = user.call("GET", f"jobs/{job_id}").json()
    return job


def logs(user: User, job_id: str) -> str:
    response = user.call("GET", f"jobs/{job_id}/logs")
    assert response.status_code == 200, response.text
    return "".join(p["log"] for p in response.json()["pods"])


def test_offloaded_jobs_share_a_juicefs_home_instead_of_nfs(
    running: tuple[Hub, LocalJuiceFS],
) -> None:
    hub, juicefs = running
    bob = User(hub, "bob", "bob-pw")  # in lhcb-flashsim, whose members may offload
    bob.start_server()

    first = run_offloaded(
        hub,
        bob,
        'stat -L -c "home %u:%g %a" "$HOME";'
        ' stat -L -c "project %g %a" "$HOME/projects/lhcb-flashsim";'
        ' echo "written on the remote site" > "$HOME/from-job.txt";'
        " env; cat /etc/juicefs/meta-password 2>&1 || true",
    )
    assert first["status"] == "succeeded", first
    assert [p["node"] for p in first["pods"]] == [NAME]  # on the interLink virtual node
    text = logs(bob, first["id"])
    # the home belongs to the user id bob's server runs as (his own), as on NFS
    server = next(
        p for p in hub.emulator.objects("Pod", NAMESPACE) if p["metadata"]["name"] == "jupyter-bob"
    )
    (notebook,) = [c for c in server["spec"]["containers"] if c["name"] == "notebook"]
    uid = notebook.get("securityContext", {}).get("runAsUser") or server["spec"].get(
        "securityContext", {}
    ).get("runAsUser", 1000)
    assert uid != 1000  # bob's own id, not the shared one
    assert f"home {uid}:100 700" in text and "project 5003 2770" in text

    # a second pod mounts the same file system and finds the first one's file
    second = run_offloaded(hub, bob, 'cat "$HOME/from-job.txt"')
    assert second["status"] == "succeeded", second
    assert "written on the remote site" in logs(bob, second["id"])

    # it went to JuiceFS, not to the NFS home of bob's server
    pod = next(
        p for p in hub.emulator.objects("Pod", NAMESPACE) if p["metadata"]["name"] == "jupyter-bob"
    )
    nfs_home = host_path(pod, "notebook", "/home/jovyan", hub.emulator.state_dir)
    assert nfs_home is not None and nfs_home.is_dir()
    assert not (nfs_home / "from-job.txt").exists()

    # the job's pods ended with their mounts: nothing of the emulator's state stays mounted
    state = str(hub.emulator.state_dir)
    wait_for(lambda: state not in Path("/proc/mounts").read_text(), 30, "the JuiceFS mounts to go")

    # the service wrote the project's Secret; users never see the password
    secret = requests.get(
        f"{hub.emulator.url}/api/v1/namespaces/{JOBS_NAMESPACE}/secrets/"
        "bunshin-juicefs-lhcb-flashsim",
        headers=hub.emulator.auth_headers,
        verify=hub.emulator.ca_file,
        timeout=10,
    ).json()
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "bunshin"
    password = base64.b64decode(secret["data"]["meta-password"]).decode()
    assert password == juicefs.password
    seen = [
        bob.call("GET", "jobs").text,
        bob.call("GET", f"jobs/{first['id']}").text,
        bob.call("GET", f"jobs/{first['id']}/logs").text,
        bob.session.get(f"{hub.url}/services/bunshin/", timeout=30).text,
    ]
    assert all(password not in page for page in seen)
    # the job's own container saw neither the password nor the Secret (its env is in the log)
    assert "META_PASSWORD" not in text and "JUICEFS" not in text and "HOME=" in text
