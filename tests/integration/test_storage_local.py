"""Storage end to end in local mode: a real hub with IAM login spawns a pod whose containers the
emulator runs as local processes with their volumes as folders. The storage-init container
creates the home and project folders, the rclone sidecar mounts the user's bucket from the
local S3 server with the user's token, and the single-user server works in the home."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from bucket_helpers import rclone, sidecar_env
from iam_platform import (
    NAMESPACE,
    Hub,
    platform_with_storage,
    running_platform,
    sign_in,
    wait_for,
)

from aiinfn_hub.dev.emulator.controllers.volumes import host_path
from aiinfn_hub.dev.s3_server import LocalS3

pytestmark = pytest.mark.slow
ROOT = os.geteuid() == 0
FUSE = ROOT and Path("/dev/fuse").exists() and shutil.which("fusermount3") is not None


def storage(s3: LocalS3) -> dict[str, Any]:
    # as root each user owns their home with their own id; otherwise only our ids can be used
    home = (
        {"uidBase": 100000, "gid": 100}
        if ROOT
        else {"uidBase": None, "uid": os.geteuid(), "gid": os.getegid()}
    )
    return {
        "nfs": {"server": "nfs.local", "path": "/exports"},
        "home": home,
        "environments": {"dir": "envs", "mountPath": "/envs"},
        "scratch": {"sizeChoices": ["1Gi"]},
        "buckets": {
            "endpoint": s3.endpoint,
            "provider": "Other",
            "region": "us-east-1",
            "mountOptions": ["--vfs-cache-mode=writes", "--dir-cache-time=1s"],
        },
    }


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, LocalS3]]:
    state = tmp_path_factory.mktemp("storage-local")
    with (
        LocalS3(state / "s3") as s3,
        running_platform(
            state, platform=lambda folder: platform_with_storage(folder / "config", storage(s3))
        ) as running,
    ):
        yield running, s3


def test_home_projects_scratch_and_bucket_are_there(
    hub: tuple[Hub, LocalS3], tmp_path: Path
) -> None:
    running, s3 = hub
    # alice's bucket holds a dataset already
    token_file = tmp_path / "token"
    token_file.write_text("any-token-for-the-setup")
    env = sidecar_env(s3, token_file, tmp_path)
    assert rclone(env, "mkdir", "buckets:alice").returncode == 0
    (tmp_path / "data.csv").write_text("x,y\n1,2\n")
    assert (
        rclone(env, "copyto", str(tmp_path / "data.csv"), "buckets:alice/data.csv").returncode == 0
    )

    _, page = sign_in(running, "alice", "alice-pw")
    assert page.status_code == 200
    response = running.admin("POST", "/users/alice/server", json={})
    assert response.status_code in (201, 202), response.text
    try:
        wait_for(
            lambda: running.admin_get("/users/alice")["servers"].get("", {}).get("ready"),
            90,
            "alice's server",
        )
        (pod,) = [
            p
            for p in running.emulator.objects("Pod", NAMESPACE)
            if p["metadata"]["name"] == "jupyter-alice"
        ]
        state_dir = running.emulator.state_dir

        def where(path: str, container: str = "notebook") -> Path:
            found = host_path(pod, container, path, state_dir)
            assert found is not None, path
            return found

        home = where("/home/jovyan").stat()
        assert home.st_mode & 0o7777 == 0o700
        if ROOT:  # alice's own id (uidBase + her hub id), the one her server runs as
            uid = pod["spec"]["containers"][0]["securityContext"]["runAsUser"]
            assert uid > 100000 and (home.st_uid, home.st_gid) == (uid, 100)
        cms = where("/home/jovyan/projects/cms").stat()
        assert cms.st_mode & 0o7777 == 0o2770 and cms.st_gid == 5002
        assert where("/scratch").is_dir()
        # the single-user server runs in the home: it wrote its runtime files there
        assert (where("/home/jovyan") / ".local").exists() or any(where("/home/jovyan").iterdir())
        # the hub's token Secret reached the sidecar as a file
        token = where("/var/run/aiinfn/token/token", "bucket-mount").read_text()
        assert token == running.auth_state("alice")["storage_token"]["access_token"]
        if FUSE:
            data = where("/home/jovyan/buckets") / "alice" / "data.csv"
            wait_for(data.exists, 30, "the bucket mount")
            assert data.read_text() == "x,y\n1,2\n"
    finally:
        running.admin("DELETE", "/users/alice/server")
    wait_for(
        lambda: (
            not [
                p
                for p in running.emulator.objects("Pod", NAMESPACE)
                if p["metadata"]["name"] == "jupyter-alice"
            ]
        ),
        60,
        "the pod to go",
    )
    # the data stays on the platform file system after the server is gone
    homes = running.emulator.state_dir / "volumes" / "nfs" / "nfs.local" / "exports" / "homes"
    assert (homes / "alice").is_dir()


def test_a_symlink_planted_in_place_of_a_home_stops_the_spawn_with_the_reason(
    hub: tuple[Hub, LocalS3], tmp_path: Path
) -> None:
    running, _ = hub
    homes = running.emulator.state_dir / "volumes" / "nfs" / "nfs.local" / "exports" / "homes"
    homes.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "someone-elses-data"
    victim.mkdir()
    victim.chmod(0o755)
    (homes / "bob").symlink_to(victim)
    _, page = sign_in(running, "bob", "bob-pw")
    assert page.status_code == 200
    began = time.monotonic()
    response = running.admin("POST", "/users/bob/server", json={})
    # failing within the hub's slow-spawn wait, the start request itself gets the reason
    assert response.status_code in (202, 500), response.text
    if response.status_code == 500:
        assert "Your storage could not be prepared" in response.json()["message"]
        assert "is a symbolic link: refusing to follow it" in response.json()["message"]

    def gave_up() -> bool:
        model = running.admin_get("/users/bob")
        return not model["servers"] and not model.get("pending")

    wait_for(gave_up, 50, "the spawn to fail")
    assert time.monotonic() - began < 50  # well before start_timeout (60 s)
    log = running.log()
    assert "storage-init of bob failed:" in log
    assert "is a symbolic link: refusing to follow it" in log
    assert victim.stat().st_mode & 0o7777 == 0o755 and not any(victim.iterdir())
    wait_for(
        lambda: all(
            p["metadata"]["name"] != "jupyter-bob"
            for p in running.emulator.objects("Pod", NAMESPACE)
        ),
        60,
        "bob's pod to be removed",
    )


def test_a_bucket_that_cannot_be_mounted_is_named_on_the_progress_page(
    hub: tuple[Hub, LocalS3],
) -> None:
    running, _ = hub  # nobody created a bucket for this user
    _, page = sign_in(running, "root-admin", "admin-pw")
    assert page.status_code == 200
    # start the server from another thread and follow its progress like the spawn page does
    started = concurrent.futures.ThreadPoolExecutor(1).submit(
        running.admin, "POST", "/users/root-admin/server", json={}
    )
    wait_for(
        lambda: (
            running.admin_get("/users/root-admin").get("servers", {}).get("", {}).get("pending")
            or started.done()
        ),
        30,
        "the spawn to begin",
    )
    messages: list[str] = []
    try:
        with requests.get(
            f"{running.api}/users/root-admin/server/progress",
            headers={"Authorization": f"token {running.api_token}"},
            stream=True,
            timeout=120,
        ) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[len("data:") :])
                    messages.append(event.get("message", ""))
                    if event.get("ready") or event.get("failed"):
                        break
        assert any(
            m.startswith("Bucket root-admin is not mounted: it does not exist on the object store")
            for m in messages
        ), messages
        (pod,) = [
            p
            for p in running.emulator.objects("Pod", NAMESPACE)
            if p["metadata"]["name"] == "jupyter-root-admin"
        ]
        buckets = host_path(pod, "notebook", "/home/jovyan/buckets", running.emulator.state_dir)
        assert buckets is not None
        note = (buckets / "root-admin" / "MOUNT-FAILED.txt").read_text()
        assert "could not be mounted here: it does not exist on the object store (not found)" in (
            note
        )
        # the server started anyway
        assert started.result().status_code in (201, 202)
        assert running.admin_get("/users/root-admin")["servers"][""]["ready"]
    finally:
        running.admin("DELETE", "/users/root-admin/server")
