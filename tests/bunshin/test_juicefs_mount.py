"""The JuiceFS sidecar's script with the real client over FUSE, against Redis + the local S3:
folders laid out, a restart after a crash remounts (the files stay), SIGTERM unmounts at once,
and bad credentials end with a clear line instead of a mount."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiinfn_hub.dev.juicefs_store import LocalJuiceFS, missing_tools
from aiinfn_hub.dev.s3_server import LocalS3, moto_server_path
from aiinfn_hub.platform.storage.scripts import script

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or not Path("/dev/fuse").exists() or not shutil.which("fusermount3"),
        reason="mounting JuiceFS needs root and FUSE (/dev/fuse, fusermount3)",
    ),
    pytest.mark.skipif(
        bool(missing_tools()) or moto_server_path() is None,
        reason="needs redis-server, juicefs and the local S3 server (scripts/setup)",
    ),
]
FOLDERS = ("homes:0:0:0755", "homes/dana:1000:100:0700:owned")


@pytest.fixture(scope="module")
def juicefs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalJuiceFS]:
    state = tmp_path_factory.mktemp("juicefs")
    with LocalS3(state / "s3") as s3, LocalJuiceFS(state, s3.endpoint) as local:
        yield local


class Sidecar:
    """The script as the sidecar container runs it, with its shared folder and Secret."""

    def __init__(self, folder: Path, metaurl: str, password: str | None) -> None:
        self.root = folder / "jfs"
        self.root.mkdir(parents=True, exist_ok=True)
        secret = folder / "secret"
        secret.mkdir(exist_ok=True)
        (secret / "metaurl").write_text(metaurl)
        if password is not None:
            (secret / "meta-password").write_text(password)
        self.env = dict(
            os.environ,
            AIINFN_JUICEFS_ROOT=str(self.root),
            AIINFN_JUICEFS_CREDENTIALS=str(secret),
            AIINFN_JUICEFS_OPTIONS="",
            AIINFN_FOLDERS_SCRIPT=script("storage-init.sh"),
        )
        self.log = folder / "sidecar.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def mnt(self) -> Path:
        return self.root / "mnt"

    def start(self) -> subprocess.Popen[bytes]:
        (self.root / "ready").unlink(missing_ok=True)  # as a fresh probe would find it
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["sh", "-c", script("juicefs-mount.sh"), "juicefs", *FOLDERS],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def ready(self, timeout: float = 20) -> bool:
        """What the startup probe checks, until the script succeeds or ends."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.root / "ready").exists():
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def mounted(self) -> bool:
        return f" {self.mnt} " in Path("/proc/self/mounts").read_text()

    def kill_hard(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True, check=False)


def test_mounts_lays_out_survives_a_crash_and_stops_on_sigterm(
    juicefs: LocalJuiceFS, tmp_path: Path
) -> None:
    sidecar = Sidecar(tmp_path, juicefs.metadata_url, juicefs.password)
    try:
        sidecar.start()
        assert sidecar.ready(), sidecar.log.read_text()
        home = sidecar.mnt / "homes" / "dana"
        info = home.stat()
        assert (info.st_uid, info.st_gid, oct(info.st_mode & 0o7777)) == (1000, 100, "0o700")
        (home / "model.pt").write_text("weights")
        os.sync()
        time.sleep(1.2)  # let the client upload before it is killed
        sidecar.kill_hard()  # the container crashes; its dead mount stays behind
        assert sidecar.mounted()
        sidecar.start()  # the kubelet restarts the sidecar
        assert sidecar.ready(), sidecar.log.read_text()
        assert (home / "model.pt").read_text() == "weights"
        assert sidecar.process is not None
        began = time.monotonic()
        sidecar.process.send_signal(signal.SIGTERM)  # the job's container has ended
        assert sidecar.process.wait(15) == 0
        assert time.monotonic() - began < 10 and not sidecar.mounted()
        assert "homes/dana exists, left as it is" in sidecar.log.read_text()
    finally:
        sidecar.cleanup()


def test_a_wrong_password_is_one_clear_failure(juicefs: LocalJuiceFS, tmp_path: Path) -> None:
    sidecar = Sidecar(tmp_path, juicefs.metadata_url, "not-the-password")
    try:
        process = sidecar.start()
        assert process.wait(60) == 1
        log = sidecar.log.read_text()
        assert "juicefs-mount: juicefs mount exited with status" in log
        assert not (sidecar.root / "ready").exists() and not sidecar.mounted()
        assert "not-the-password" not in log
    finally:
        sidecar.cleanup()


def test_without_the_projects_secret_it_says_so(tmp_path: Path) -> None:
    sidecar = Sidecar(tmp_path, "", None)
    process = sidecar.start()
    assert process.wait(10) == 1
    assert "metaurl is missing" in sidecar.log.read_text()
