"""A local S3-compatible server with STS (moto), for bucket tests and the local platform.

moto answers ``AssumeRoleWithWebIdentity`` with temporary keys for any token and serves S3 on
the same port; it binds one address, 127.0.0.1 unless told (the local platform gives the pod
network's gateway when pods have network namespaces: they cannot reach this machine's
127.0.0.1, and this machine reaches the gateway too). It lives in its own virtualenv
(``.tools/moto``, made by ``scripts/setup``) because its botocore pins a python-dateutil the
kubernetes client cannot use.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Self

from .processes import LocalService, ManagedProcess, ProcessError, answers, free_port

ENV_VAR = "AIINFN_MOTO_SERVER"


def moto_server_path() -> Path | None:
    """``$AIINFN_MOTO_SERVER``, else ``.tools/moto/bin/moto_server`` of the checkout or cwd."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    checkout = Path(__file__).resolve().parents[2]
    for base in (checkout, Path.cwd()):
        candidate = base / ".tools" / "moto" / "bin" / "moto_server"
        if candidate.exists():
            return candidate
    found = shutil.which("moto_server")
    return Path(found) if found else None


class LocalS3(LocalService):
    """moto's server on ``host`` (127.0.0.1); ``endpoint`` serves both S3 and STS."""

    def __init__(
        self,
        state_dir: Path,
        port: int = 0,
        *,
        deny_other_accounts: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        """``deny_other_accounts``: a bucket made with another account's credentials (from
        STS for a role ARN of another account id) answers 403 AccessDenied, as a real object
        store refuses a token without rights on a bucket; by default moto allows it.
        ``host``: the one address to listen on, never one every interface answers."""
        if host in ("", "0.0.0.0", "::"):
            raise ValueError("the local S3 server must not listen on every interface")
        self.state_dir = state_dir
        self.host = host
        self.port = port or free_port(host)
        self.deny_other_accounts = deny_other_accounts
        self.process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 90.0) -> Self:
        server = moto_server_path()
        if server is None:
            raise ProcessError("moto_server is not installed: run scripts/setup")
        env = dict(os.environ)
        if self.deny_other_accounts:
            env["MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS"] = "false"
        self.process = ManagedProcess(
            "the local S3 server",
            [str(server), "-H", self.host, "-p", str(self.port)],
            self.state_dir / "s3-server.log",
            env=env,
        ).start()
        try:
            self.process.wait_until(self.answers, timeout, "serving S3")
        except BaseException:
            self.stop()
            raise
        return self

    def answers(self) -> bool:
        return answers(f"{self.endpoint}/")
