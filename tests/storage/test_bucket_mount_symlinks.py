"""The privileged bucket sidecar never follows a symlink it did not make (issue item 3).

The real ``bucket-mount.sh`` runs with the real rclone, whose remote is an ``alias`` of a local
folder standing for the object store, so no S3 server is needed. As root with /dev/fuse (CI,
the development container) the buckets are really mounted, so a followed symlink would show
the bucket's files at its target; without FUSE the mount fails and a followed symlink would
show MOUNT-FAILED.txt there. Either way the target must stay empty and unmounted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aiinfn_hub.config.storage import Buckets
from aiinfn_hub.dev.emulator.controllers.volumes import mounts_below
from aiinfn_hub.platform.storage.buckets import notebook_mount
from aiinfn_hub.platform.storage.scripts import script
from aiinfn_hub.spawner.spawner import parse_bucket_report

ROOT = os.geteuid() == 0
FUSE = ROOT and Path("/dev/fuse").exists() and shutil.which("fusermount3") is not None
NOT_PLAIN = "its mount point is not a plain folder made by the sidecar"


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def rclone_daemons(below: Path) -> list[int]:
    """The ``rclone mount`` processes whose command line names a path below ``below``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mount" in args and any(a.startswith(str(below).encode() + b"/") for a in args):
            pids.append(int(proc.name))
    return pids


class Sidecar:
    """One run of the script, as the sidecar container's command; its log is the container's."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            ["sh", "-c", script("bucket-mount.sh"), "bucket-mount"],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def reports(self) -> dict[str, str | None]:
        """What the progress page learns: bucket -> None (mounted) or why it failed."""
        return dict(parse_bucket_report(self.log.read_text()))

    def wait_reports(self, *buckets: str) -> dict[str, str | None]:
        wait_for(lambda: set(buckets) <= set(self.reports()), 30, f"reports on {buckets}")
        assert self.process.poll() is None  # the server is never blocked: it keeps running
        return self.reports()

    def stop(self) -> None:
        """A graceful stop (the kubelet's TERM): the script unmounts what it mounted."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)

    def crash(self, root: Path) -> None:
        """The container dies at once: the script and its rclone daemons get SIGKILL."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        for pid in rclone_daemons(root):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not rclone_daemons(root), 30, "the rclone daemons to die")


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Path]:
    """A work folder; whatever the script left mounted below it is detached afterwards."""
    if shutil.which("rclone") is None:
        pytest.fail("rclone is not installed: run scripts/setup (Debian package rclone)")
    yield tmp_path
    for pid in rclone_daemons(tmp_path):
        os.kill(pid, signal.SIGKILL)
    for point in mounts_below(tmp_path):
        subprocess.run(["fusermount3", "-u", "-z", point], capture_output=True, check=False)


def store_with(place: Path, *buckets: str) -> Path:
    """The local folder standing for the object store, one file in each bucket."""
    store = place / "store"
    for bucket in buckets:
        (store / bucket).mkdir(parents=True)
        (store / bucket / "data.txt").write_text(f"data of {bucket}")
    return store


def sidecar_env(place: Path, root: Path, store: Path, *buckets: str) -> dict[str, str]:
    token = place / "token"
    token.write_text("a token")  # read only by sts-credentials.sh, which an alias never runs
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "AIINFN_"))}
    return env | {
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_BUCKETS_TYPE": "alias",
        "RCLONE_CONFIG_BUCKETS_REMOTE": str(store),
        "AIINFN_BUCKETS": " ".join(buckets),
        "AIINFN_MOUNT_ROOT": str(root),
        "AIINFN_TOKEN_FILE": str(token),
        "AIINFN_TOKEN_WAIT": "0",
        "AIINFN_STS_SCRIPT": script("sts-credentials.sh"),
        "AIINFN_MOUNT_OPTIONS": "--dir-cache-time=1s",
    }


def untouched(target: Path) -> None:
    """Nothing was created in ``target`` and nothing is mounted on or below it."""
    assert list(target.iterdir()) == []
    real = os.path.realpath(target)
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    assert not [p for p in points if p == real or p.startswith(real + "/")]


def assert_mounted_or_noted(root: Path, bucket: str, report: str | None) -> None:
    """A good bucket is mounted (with FUSE) or gets its note in its own folder (without)."""
    if FUSE:
        assert report is None
        assert (root / bucket / "data.txt").read_text() == f"data of {bucket}"
    else:
        assert report is not None and "rclone mount failed" in report
        assert "could not be mounted" in (root / bucket / "MOUNT-FAILED.txt").read_text()


def test_the_notebook_sees_the_mount_root_read_only_but_with_propagation() -> None:
    mount = notebook_mount(Buckets(endpoint="https://s3.example.org"))
    assert mount["readOnly"] is True and mount["mountPropagation"] == "HostToContainer"
    assert "recursiveReadOnly" not in mount  # Kubernetes refuses it together with propagation


def test_a_symlink_planted_at_a_mount_point_is_refused(place: Path) -> None:
    store = store_with(place, "alice", "bob")
    root, target = place / "buckets", place / "target"
    root.mkdir()
    root.chmod(0o777)  # as an emptyDir starts
    target.mkdir()
    (root / "alice").symlink_to(target)
    sidecar = Sidecar(sidecar_env(place, root, store, "alice", "bob"), place / "sidecar.log")
    try:
        reports = sidecar.wait_reports("alice", "bob")
        assert reports["alice"] is not None and NOT_PLAIN in reports["alice"]
        untouched(target)
        assert (root / "alice").readlink() == target  # refused, left as it is
        assert_mounted_or_noted(root, "bob", reports["bob"])  # the other bucket is not held up
        assert root.stat().st_mode & 0o777 == 0o755  # the emptyDir's 0777 is closed at once
    finally:
        sidecar.stop()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_planted_as_the_mount_root_is_refused(place: Path, dangling: bool) -> None:
    store = store_with(place, "alice")
    root, target = place / "buckets", place / "target"
    if not dangling:
        target.mkdir()
    root.symlink_to(target)
    sidecar = Sidecar(sidecar_env(place, root, store, "alice"), place / "sidecar.log")
    try:
        reason = sidecar.wait_reports("alice")["alice"]
        assert reason is not None and "mount root" in reason
        if dangling:
            assert not target.exists()
        else:
            untouched(target)
    finally:
        sidecar.stop()


def test_a_swap_during_a_slow_listing_is_caught_before_the_mount(place: Path) -> None:
    store = store_with(place, "alice")
    root, target, marks, tools = (place / n for n in ("buckets", "target", "marks", "bin"))
    for folder in (root, target, marks, tools):
        folder.mkdir()
    real_rclone = shutil.which("rclone")
    # an rclone whose listing waits until the test has swapped the mount point
    (tools / "rclone").write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$1" >> {marks}/calls\n'
        'if [ "$1" = lsf ]; then\n'
        f"  : > {marks}/listing\n"
        f"  while [ ! -e {marks}/swapped ]; do sleep 0.05; done\n"
        "fi\n"
        f'exec {real_rclone} "$@"\n'
    )
    (tools / "rclone").chmod(0o755)
    env = sidecar_env(place, root, store, "alice")
    env["PATH"] = f"{tools}:{env['PATH']}"
    sidecar = Sidecar(env, place / "sidecar.log")
    try:
        wait_for((marks / "listing").exists, 30, "the listing to start")
        assert (root / "alice").is_dir() and not (root / "alice").is_symlink()
        (root / "alice").rename(place / "moved")
        (root / "alice").symlink_to(target)
        (marks / "swapped").touch()
        reason = sidecar.wait_reports("alice")["alice"]
        assert reason is not None and NOT_PLAIN in reason
        untouched(target)
        assert (marks / "calls").read_text().split() == ["lsf"]  # rclone mount never ran
        assert list((place / "moved").iterdir()) == []
    finally:
        sidecar.stop()


@pytest.mark.skipif(not FUSE, reason="FUSE mounts need root, /dev/fuse and fusermount3")
def test_a_restart_checks_leftover_mount_points_again(place: Path) -> None:
    store = store_with(place, "alice", "bob", "carol")
    root, target = place / "buckets", place / "target"
    root.mkdir()
    target.mkdir()
    env = sidecar_env(place, root, store, "alice", "bob")
    first = Sidecar(env, place / "first.log")
    assert first.wait_reports("alice", "bob") == {"alice": None, "bob": None}
    first.crash(root)  # both mounts stay behind, stale ("transport endpoint is not connected")
    assert sorted(mounts_below(root)) == [str(root / "alice"), str(root / "bob")]
    # bob's leftover is replaced by a symlink, carol's folder belongs to someone else
    subprocess.run(["fusermount3", "-u", "-z", str(root / "bob")], check=True)
    (root / "bob").rmdir()
    (root / "bob").symlink_to(target)
    (root / "carol").mkdir()
    os.chown(root / "carol", 1000, 1000)

    second = Sidecar(env | {"AIINFN_BUCKETS": "alice bob carol"}, place / "second.log")
    try:
        reports = second.wait_reports("alice", "bob", "carol")
        assert reports["alice"] is None  # the stale mount was detached, then mounted afresh
        assert (root / "alice" / "data.txt").read_text() == "data of alice"
        assert reports["bob"] is not None and NOT_PLAIN in reports["bob"]
        untouched(target)
        assert reports["carol"] is not None and NOT_PLAIN in reports["carol"]
        assert list((root / "carol").iterdir()) == []
        assert mounts_below(root) == [str(root / "alice")]
    finally:
        second.stop()
    assert mounts_below(root) == []  # unmounted on stop
