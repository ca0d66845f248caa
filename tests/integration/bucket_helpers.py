"""rclone with the bucket sidecar's own configuration, run on this machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from aiinfn_hub.config.storage import Buckets
from aiinfn_hub.dev.s3_server import LocalS3
from aiinfn_hub.platform.storage.buckets import rclone_environment


def sidecar_env(s3: LocalS3, token_file: Path, work: Path) -> dict[str, str]:
    """The sidecar's environment, plus the AWS config its script writes (credential_process)."""
    buckets = Buckets(endpoint=s3.endpoint, provider="Other", region="us-east-1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env |= rclone_environment(buckets, "alice", str(token_file))
    (work / "sts-credentials.sh").write_text(env["AIINFN_STS_SCRIPT"])
    (work / "aws-config").write_text(
        f"[default]\ncredential_process = sh {work / 'sts-credentials.sh'}\n"
    )
    env |= {
        "AWS_CONFIG_FILE": str(work / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "RCLONE_CONFIG": "/dev/null",
    }
    return env


def rclone(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rclone", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
