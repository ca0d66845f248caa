"""Bucket access with real rclone (Debian's) against a local S3 + STS server (moto), with
tokens from the real local OpenID provider, driven by the sidecar's own configuration
(``rclone_environment`` and the scripts of ``aiinfn_hub/storage/scripts``).

moto's STS accepts any token, so what these tests establish is our side: the token is read
from the file (fresh at every credential fetch), never from the environment, a missing token
gives the user the clear note, and a bucket that does not exist is told from one the token
gives no access to (another account's bucket, which the local S3 refuses with 403).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from bucket_helpers import rclone, sidecar_env
from iam_platform import STORAGE_AUDIENCE, provider_code_flow, provider_settings, wait_for

from aiinfn_hub.auth.tokens import exchange_params
from aiinfn_hub.dev.oidc import LocalOIDCProvider, OIDCClient
from aiinfn_hub.dev.processes import free_port
from aiinfn_hub.dev.s3_server import LocalS3
from aiinfn_hub.platform.storage.scripts import script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    if shutil.which("rclone") is None:
        pytest.fail("rclone is not installed: run scripts/setup (Debian package rclone)")
    # another account's bucket is refused (403), as a real object store refuses a token
    with LocalS3(tmp_path_factory.mktemp("s3"), deny_other_accounts=True) as server:
        yield server


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOIDCProvider]:
    settings = provider_settings(free_port(), secrets.token_urlsafe(16))
    with LocalOIDCProvider(settings, tmp_path_factory.mktemp("oidc")) as running:
        yield running


def storage_token(provider: LocalOIDCProvider) -> str:
    """A storage token for alice, obtained the way the hub does (login, then exchange)."""
    client: OIDCClient = provider.settings.clients[0]
    login = provider_code_flow(provider, client, "alice", "alice-pw")
    answer = requests.post(
        provider.discovery()["token_endpoint"],
        data=exchange_params(login["access_token"], STORAGE_AUDIENCE, ["storage.read:/"]),
        auth=(client.client_id, client.client_secret),
        timeout=30,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def test_provider_token_lists_and_writes_the_bucket_and_a_refreshed_one_too(
    s3: LocalS3, provider: LocalOIDCProvider, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(storage_token(provider))
    env = sidecar_env(s3, token_file, tmp_path)
    assert token_file.read_text() not in str(env)  # only the file's path is in the environment
    assert rclone(env, "mkdir", "buckets:alice").returncode == 0
    (tmp_path / "notes.txt").write_text("dataset v1")
    result = rclone(env, "copyto", str(tmp_path / "notes.txt"), "buckets:alice/notes.txt")
    assert result.returncode == 0, result.stderr
    assert rclone(env, "lsf", "buckets:alice").stdout.split() == ["notes.txt"]

    # the hub renews the token: the kubelet rewrites the file; the next fetch reads it
    token_file.write_text(storage_token(provider))
    result = rclone(env, "cat", "buckets:alice/notes.txt")
    assert result.returncode == 0 and result.stdout == "dataset v1"

    # the token is gone (e.g. the user logged out and the Secret was emptied): no access
    token_file.write_text("")
    result = rclone(env, "lsf", "buckets:alice")
    assert result.returncode != 0
    assert "credential_process" in result.stderr


def run_sidecar(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sh", "-c", script("bucket-mount.sh"), "bucket-mount"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_sidecar_without_a_token_leaves_a_clear_note(s3: LocalS3, tmp_path: Path) -> None:
    token_file = tmp_path / "token"  # never written: the Secret is missing
    env = sidecar_env(s3, token_file, tmp_path)
    root = tmp_path / "buckets"
    env |= {"AIINFN_BUCKETS": "alice", "AIINFN_MOUNT_ROOT": str(root), "AIINFN_TOKEN_WAIT": "0"}
    log = tmp_path / "sidecar.log"
    process = run_sidecar(env, log)
    try:
        note = root / "alice" / "MOUNT-FAILED.txt"
        wait_for(note.exists, 20, "the note")
        assert "no IAM token is available for your account" in note.read_text()
        wait_for(lambda: "aiinfn-bucket: FAILED alice" in log.read_text(), 5, "the log line")
        assert process.poll() is None  # the server is not blocked: the sidecar keeps running
    finally:
        stop(process)


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/dev/fuse").exists() or not shutil.which("fusermount3"),
    reason="FUSE mounts need root, /dev/fuse and fusermount3 (CI has them)",
)
def test_the_sidecar_mounts_the_bucket_with_the_provider_token(
    s3: LocalS3, provider: LocalOIDCProvider, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(storage_token(provider))
    env = sidecar_env(s3, token_file, tmp_path)
    assert rclone(env, "mkdir", "buckets:mounted").returncode == 0
    (tmp_path / "in.txt").write_text("from S3")
    assert rclone(env, "copyto", str(tmp_path / "in.txt"), "buckets:mounted/in.txt").returncode == 0
    root = tmp_path / "buckets"
    env |= {
        "AIINFN_BUCKETS": "mounted",
        "AIINFN_MOUNT_ROOT": str(root),
        "AIINFN_MOUNT_OPTIONS": "--vfs-cache-mode=writes --dir-cache-time=1s",
    }
    log = tmp_path / "sidecar.log"
    process = run_sidecar(env, log)
    try:
        wait_for(lambda: "aiinfn-bucket: mounted mounted" in log.read_text(), 30, "the mount")
        assert (root / "mounted" / "in.txt").read_text() == "from S3"
        (root / "mounted" / "out.txt").write_text("from the notebook")
        wait_for(
            lambda: "out.txt" in rclone(env, "lsf", "buckets:mounted").stdout.split(),
            30,
            "the upload",
        )
    finally:
        stop(process)
    assert not (root / "mounted" / "in.txt").exists()  # unmounted on stop


def test_the_sidecar_tells_a_missing_bucket_from_a_refused_one(
    s3: LocalS3, provider: LocalOIDCProvider, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(storage_token(provider))
    env = sidecar_env(s3, token_file, tmp_path)
    # a bucket of another account (another role's credentials): alice's token has no rights
    other = env | {"AIINFN_ROLE_ARN": "arn:aws:iam::111111111111:role/other-experiment"}
    made = rclone(other, "mkdir", "buckets:other-experiment")
    assert made.returncode == 0, made.stderr
    assert "AccessDenied" in rclone(env, "lsf", "buckets:other-experiment").stderr
    root = tmp_path / "buckets"
    env |= {"AIINFN_BUCKETS": "nobody-made-this other-experiment", "AIINFN_MOUNT_ROOT": str(root)}
    log = tmp_path / "sidecar.log"
    process = run_sidecar(env, log)
    try:
        wait_for(lambda: log.read_text().count("aiinfn-bucket: FAILED") == 2, 30, "both reports")
        lines = dict(
            line[len("aiinfn-bucket: FAILED ") :].split(": ", 1)
            for line in log.read_text().splitlines()
            if line.startswith("aiinfn-bucket: FAILED ")
        )
        missing = (
            "it does not exist on the object store (not found): ask the platform "
            "administrators to create it"
        )
        assert lines["nobody-made-this"].startswith(missing), lines
        refused = "access denied: the object store refused your IAM token for this bucket"
        assert lines["other-experiment"].startswith(refused), lines
        assert missing in (root / "nobody-made-this" / "MOUNT-FAILED.txt").read_text()
        assert refused in (root / "other-experiment" / "MOUNT-FAILED.txt").read_text()
        assert process.poll() is None  # the server starts anyway
    finally:
        stop(process)


def test_the_sidecar_says_when_the_token_service_refuses_the_token(
    s3: LocalS3, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("a token the token service does not accept")
    env = sidecar_env(s3, token_file, tmp_path)
    root = tmp_path / "buckets"
    env |= {
        "AIINFN_BUCKETS": "alice",
        "AIINFN_MOUNT_ROOT": str(root),
        # an STS that refuses every request (moto answers this path with an error)
        "AIINFN_STS_ENDPOINT": f"{s3.endpoint}/refusing-sts",
    }
    log = tmp_path / "sidecar.log"
    process = run_sidecar(env, log)
    try:
        wait_for(lambda: "aiinfn-bucket: FAILED alice" in log.read_text(), 30, "the report")
        why = log.read_text().split("aiinfn-bucket: FAILED alice: ", 1)[1].splitlines()[0]
        assert why.startswith(
            "access denied: the object store's token service refused your IAM token (the STS "
            f"endpoint {s3.endpoint}/refusing-sts refused the IAM token or cannot be reached): "
            "log out of the hub, log in again"
        ), why
    finally:
        stop(process)
