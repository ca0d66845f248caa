"""The user's object-store buckets, mounted with rclone and the user's IAM token.

``sidecar`` mode: a ``bucket-mount`` container runs ``scripts/bucket-mount.sh``. rclone's S3
client gets its credentials from an AWS ``credential_process`` (``scripts/sts-credentials.sh``)
that exchanges the token file for temporary keys with STS ``AssumeRoleWithWebIdentity``; the
SDK runs it again before the keys expire, and the token file is the user's token Secret mounted
as a whole volume, which the kubelet updates when the hub renews the token. The token is never
in an environment variable. The mounts reach the notebook container through a shared
``emptyDir`` (Bidirectional propagation in the sidecar, HostToContainer in the notebook);
Kubernetes allows Bidirectional only in privileged containers, so the sidecar is privileged and
the notebook container stays "restricted". Since root mounts there, the notebook sees the
folder read-only (its user cannot plant a symlink where a mount point goes), and the script
checks every mount point before mounting on it and again after each restart.

``csi`` mode: one CSI volume per bucket, served by an rclone/S3 CSI driver whose node plugin
holds the privilege; the user's token Secret is the volume's node-publish secret.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from ...config import PlatformConfig
from ...config.storage import Buckets
from .naming import user_folder, volume_name
from .scripts import script

JSON = dict[str, Any]
SIDECAR = "bucket-mount"
SHARED_VOLUME = "buckets"
TOKEN_VOLUME = "iam-token"
TOKEN_DIR = "/var/run/aiinfn/token"
SIDECAR_ROOT = "/buckets"
REMOTE = "buckets"  # the rclone remote name (RCLONE_CONFIG_BUCKETS_*)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def user_bucket(buckets: Buckets, username: str) -> str | None:
    """The user's own bucket from the ``userBucket`` template, if it makes a valid name.

    ``{username}`` is the hub username; ``{user}`` its safe folder name (lowercase, hashed
    when it had to change), for platforms whose usernames are not valid bucket names.
    """
    if not buckets.user_bucket:
        return None
    name = buckets.user_bucket.replace("{username}", username).replace(
        "{user}", user_folder(username)
    )
    return name if _BUCKET.fullmatch(name) and ".." not in name else None


def bucket_names(config: PlatformConfig, username: str, groups: frozenset[str]) -> list[str]:
    """The user's bucket, then the buckets of the user's projects (no duplicates)."""
    buckets = config.storage.buckets
    if buckets is None:
        return []
    names: list[str] = []
    own = user_bucket(buckets, username)
    if own:
        names.append(own)
    for name, project in sorted(config.projects.items()):
        bucket = project.storage.bucket
        if name in groups and bucket and bucket not in names:
            names.append(bucket)
    return names


def rclone_environment(buckets: Buckets, username: str, token_file: str) -> dict[str, str]:
    """The rclone remote and the STS exchange settings: the same for the sidecar and tests.

    Nothing here is secret: the token is read from ``token_file`` when credentials are needed.
    """
    return {
        f"RCLONE_CONFIG_{REMOTE.upper()}_TYPE": "s3",
        f"RCLONE_CONFIG_{REMOTE.upper()}_PROVIDER": buckets.provider,
        f"RCLONE_CONFIG_{REMOTE.upper()}_ENV_AUTH": "true",
        f"RCLONE_CONFIG_{REMOTE.upper()}_ENDPOINT": buckets.endpoint,
        f"RCLONE_CONFIG_{REMOTE.upper()}_REGION": buckets.region,
        "AIINFN_TOKEN_FILE": token_file,
        "AIINFN_STS_ENDPOINT": buckets.sts_endpoint or buckets.endpoint,
        "AIINFN_ROLE_ARN": buckets.role_arn,
        "AIINFN_SESSION_NAME": user_folder(username),
        "AIINFN_STS_SCRIPT": script("sts-credentials.sh"),
    }


def token_volume(secret_name: str) -> JSON:
    """The user's token Secret as a whole volume (updated in place when the hub renews it).

    ``optional`` so a missing Secret (no token yet) never blocks the spawn: the sidecar then
    leaves a note instead of a mount.
    """
    return {
        "name": TOKEN_VOLUME,
        "secret": {"secretName": secret_name, "optional": True, "defaultMode": 0o400},
    }


def sidecar_volumes(secret_name: str) -> list[JSON]:
    return [token_volume(secret_name), {"name": SHARED_VOLUME, "emptyDir": {}}]


def notebook_mount(buckets: Buckets) -> JSON:
    """The shared folder in the notebook container: read-only, so that its user can never
    create, rename or swap an entry where the privileged sidecar makes its mount points (an
    emptyDir starts 0777, and the notebook may start before the sidecar or restart after it).

    ``readOnly`` is not recursive: it covers the emptyDir folder itself, while each bucket's
    FUSE mount, propagated from the sidecar through ``HostToContainer``, keeps its own
    read-write flags, so the buckets stay writable. ``recursiveReadOnly`` stays unset on
    purpose: Kubernetes allows it only without mount propagation.
    """
    return {
        "name": SHARED_VOLUME,
        "mountPath": buckets.mount_path,
        "mountPropagation": "HostToContainer",
        "readOnly": True,
    }


def sidecar_container(buckets: Buckets, username: str, names: list[str], token_key: str) -> JSON:
    env = rclone_environment(buckets, username, posixpath.join(TOKEN_DIR, token_key))
    env |= {
        "AIINFN_BUCKETS": " ".join(names),
        "AIINFN_MOUNT_ROOT": SIDECAR_ROOT,
        "AIINFN_MOUNT_OPTIONS": " ".join(buckets.mount_options),
    }
    return {
        "name": SIDECAR,
        "image": buckets.image,
        "command": ["sh", "-c", script("bucket-mount.sh"), SIDECAR],
        "env": [{"name": key, "value": value} for key, value in env.items()],
        "volumeMounts": [
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": SHARED_VOLUME, "mountPath": SIDECAR_ROOT, "mountPropagation": "Bidirectional"},
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        # FUSE, and Bidirectional propagation (allowed only to privileged containers)
        "securityContext": {"privileged": True},
    }


def csi_volumes(buckets: Buckets, names: list[str], secret_name: str) -> list[JSON]:
    return [
        {
            "name": volume_name("bucket", name),
            "csi": {
                "driver": buckets.csi_driver,
                "volumeAttributes": {
                    "remote": REMOTE,
                    "remotePath": name,
                    "s3-provider": buckets.provider,
                    "s3-endpoint": buckets.endpoint,
                    "s3-region": buckets.region,
                    "sts-endpoint": buckets.sts_endpoint or buckets.endpoint,
                    "role-arn": buckets.role_arn,
                },
                "nodePublishSecretRef": {"name": secret_name},
            },
        }
        for name in names
    ]


def csi_mounts(buckets: Buckets, names: list[str]) -> list[JSON]:
    return [
        {"name": volume_name("bucket", name), "mountPath": posixpath.join(buckets.mount_path, name)}
        for name in names
    ]
