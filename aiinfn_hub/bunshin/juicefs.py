"""JuiceFS for offloaded jobs: the home and project folders a pod gets on another site.

An offloaded pod leaves the cluster, and the platform's NFS cannot follow it. When the
configuration has ``jobs.offload.juicefs``, the cloned mounts of the platform file system become
folders of a JuiceFS file system instead: ``offload_storage`` maps them (or lists what cannot
go), ``sidecar`` is the native sidecar that mounts the file system with FUSE and creates missing
folders before the job's container starts, and ``credentials_secret`` is the per-project Secret
the service owns in the jobs' namespace (metadata URL and password; users never read it, the
job's container never mounts it). All pure: the service does the reading and writing.
"""

from __future__ import annotations

import base64
import posixpath
from dataclasses import dataclass, field
from typing import Any

from ..config import PlatformConfig
from ..config.jobs import JuiceFS
from ..platform import vocabulary as v
from ..platform.storage import ephemeral, nfs
from ..platform.storage.naming import user_folder
from ..platform.storage.scripts import script

JSON = dict[str, Any]
VOLUME = "juicefs"
CREDENTIALS_VOLUME = "juicefs-credentials"
SIDECAR = "juicefs"
SIDECAR_ROOT = "/jfs"  # the shared emptyDir, as the sidecar sees it
MOUNT_DIR = "mnt"  # the file system is mounted at <root>/mnt; <root>/ready says it is laid out
READY_FILE = "ready"
CREDENTIALS_DIR = "/etc/juicefs"
METAURL_KEY = "metaurl"
PASSWORD_KEY = "meta-password"
SECRET_COMPONENT = v.COMPONENT_JUICEFS_CREDENTIALS
PORTABLE = ("emptyDir",)  # volume kinds that go anywhere as they are
PARENT_MODE = "0755"


@dataclass(frozen=True)
class JuiceFSPlan:
    """What an offloaded job needs from the project's JuiceFS file system."""

    project: str
    secret: str
    folders: list[str] = field(default_factory=list)  # ``path:uid:gid:mode``, parents first


@dataclass(frozen=True)
class OffloadStorage:
    """The volumes and mounts an offloaded job keeps, and what it could not take along."""

    volumes: list[JSON]
    mounts: list[JSON]
    juicefs: JuiceFSPlan | None
    blockers: list[str]


def secret_name(project: str) -> str:
    return f"bunshin-juicefs-{project}"


def metadata_url(juicefs: JuiceFS, project: str) -> str:
    return juicefs.metadata_url.replace("{project}", project)


def _area(config: PlatformConfig, mount: JSON, project: str) -> str | None:
    """Which part of the platform file system a cloned mount is (``other-project`` too)."""
    storage, path = config.storage, mount.get("mountPath")
    if path == storage.home.mount_path:
        return "home"
    if posixpath.dirname(str(path)) == storage.projects.mount_path:
        return "project" if posixpath.basename(str(path)) == project else "other-project"
    for name in ("environments", "shared"):
        area = getattr(storage, name)
        if area is not None and path == area.mount_path:
            return name
    return None


def _is_cvmfs(config: PlatformConfig, mount: JSON) -> bool:
    cvmfs, path = config.storage.cvmfs, str(mount.get("mountPath"))
    return (
        cvmfs is not None
        and str(mount["name"]).startswith(ephemeral.CVMFS_ALL_VOLUME)
        and (path == cvmfs.mount_path or path.startswith(cvmfs.mount_path + "/"))
    )


def _folder(
    config: PlatformConfig,
    juicefs: JuiceFS,
    area: str,
    username: str,
    project: str,
    uid: int | None = None,
) -> tuple[str, str, str] | None:
    """``(folder in the file system, owner uid:gid, mode)`` for an area, or None. The home
    belongs to ``uid``, the user id the server runs as (each user has their own), else to
    ``storage.home.uid``."""
    template = getattr(juicefs, area)
    if template is None:
        return None
    folder = template.replace("{user}", user_folder(username)).replace("{project}", project)
    home = config.storage.home
    if area == "home":
        owner = home.uid if uid is None else uid
        # an existing home must already be this user's (storage-init.sh refuses otherwise)
        return folder, f"{owner}:{home.gid}", f"{nfs.HOME_MODE}:owned"
    if area == "project":
        gid = config.projects[project].storage.gid
        return folder, f"0:{gid if gid is not None else 0}", nfs.PROJECT_MODE
    return folder, "0:0", PARENT_MODE


def _with_parents(folders: list[tuple[str, str, str]]) -> list[str]:
    """``path:uid:gid:mode`` for every folder and its missing ancestors (root, 0755), parents
    first, each once: the sidecar's relative paths under the mount."""
    specs: dict[str, str] = {}
    for folder, owner, mode in folders:
        parts = folder.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            specs.setdefault(parent, f"{parent}:0:0:{PARENT_MODE}")
        specs[folder] = f"{folder}:{owner}:{mode}"
    return list(specs.values())


def offload_storage(
    config: PlatformConfig,
    username: str,
    project: str,
    volumes: list[JSON],
    mounts: list[JSON],
    uid: int | None = None,
) -> OffloadStorage:
    """Map the cloned mounts for a remote site: portable volumes stay, the platform file
    system's home/project/areas become JuiceFS folders when configured, CVMFS the sites' own
    when they have it, other projects' folders are left out (a job works for one project),
    everything else blocks the offload. ``uid``: the user id the server runs as (owner of
    the home folder)."""
    juicefs = config.jobs.offload.juicefs
    by_name = {v["name"]: v for v in volumes}
    kept_volumes: dict[str, JSON] = {}
    kept_mounts: list[JSON] = []
    folders: list[tuple[str, str, str]] = []
    blockers: list[str] = []
    for mount in mounts:
        volume = by_name[mount["name"]]
        kind = next((k for k in volume if k != "name"), "unknown")
        if kind in PORTABLE:
            kept_volumes[volume["name"]] = volume
            kept_mounts.append(mount)
            continue
        if _is_cvmfs(config, mount) and config.jobs.offload.cvmfs == "site":
            kept_volumes[volume["name"]] = {
                "name": volume["name"],
                "hostPath": {"path": mount["mountPath"], "type": "Directory"},
            }
            kept_mounts.append(
                {"name": volume["name"], "mountPath": mount["mountPath"], "readOnly": True}
            )
            continue
        area = _area(config, mount, project) if mount["name"] == nfs.VOLUME else None
        if area == "other-project":
            continue
        target = (
            _folder(config, juicefs, area, username, project, uid) if juicefs and area else None
        )
        if target is None:
            blockers.append(f"{mount['mountPath']} ({kind})")
            continue
        folders.append(target)
        replacement = {
            "name": VOLUME,
            "mountPath": mount["mountPath"],
            "subPath": f"{MOUNT_DIR}/{target[0]}",
        }
        if "readOnly" in mount:
            replacement["readOnly"] = mount["readOnly"]
        kept_mounts.append(replacement)
    plan = None
    if folders:
        plan = JuiceFSPlan(project, secret_name(project), _with_parents(folders))
        kept_volumes[VOLUME] = {"name": VOLUME, "emptyDir": {}}
        kept_volumes[CREDENTIALS_VOLUME] = {
            "name": CREDENTIALS_VOLUME,
            "secret": {"secretName": plan.secret, "defaultMode": 0o400},
        }
    return OffloadStorage(list(kept_volumes.values()), kept_mounts, plan, blockers)


def sidecar(juicefs: JuiceFS, plan: JuiceFSPlan) -> JSON:
    """The native sidecar (an init container that keeps running) mounting the file system.

    Its startup probe holds the job's container back until the mount is up and the folders
    exist. Privileged: FUSE, and Bidirectional propagation is allowed only to privileged
    containers; the job's own container stays restricted.
    """
    env = {
        "AIINFN_JUICEFS_ROOT": SIDECAR_ROOT,
        "AIINFN_JUICEFS_CREDENTIALS": CREDENTIALS_DIR,
        "AIINFN_JUICEFS_OPTIONS": " ".join(juicefs.mount_options),
        "AIINFN_FOLDERS_SCRIPT": script("storage-init.sh"),
    }
    return {
        "name": SIDECAR,
        "image": juicefs.image,
        "restartPolicy": "Always",
        "command": ["sh", "-c", script("juicefs-mount.sh"), SIDECAR],
        "args": plan.folders,
        "env": [{"name": key, "value": value} for key, value in env.items()],
        "volumeMounts": [
            {"name": VOLUME, "mountPath": SIDECAR_ROOT, "mountPropagation": "Bidirectional"},
            {"name": CREDENTIALS_VOLUME, "mountPath": CREDENTIALS_DIR, "readOnly": True},
        ],
        "startupProbe": {
            "exec": {"command": ["test", "-f", posixpath.join(SIDECAR_ROOT, READY_FILE)]},
            "periodSeconds": 1,
            "failureThreshold": 300,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        # FUSE, and Bidirectional propagation (allowed only to privileged containers)
        "securityContext": {"privileged": True},
    }


def credentials_secret(
    juicefs: JuiceFS, project: str, namespace: str, password: str | None, managed_by: str
) -> JSON:
    """The project's Secret: the metadata URL and, when there is one, its password."""
    data = {METAURL_KEY: metadata_url(juicefs, project)}
    if password:
        data[PASSWORD_KEY] = password
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(project),
            "namespace": namespace,
            "labels": {
                v.MANAGED_BY: managed_by,
                v.COMPONENT: SECRET_COMPONENT,
                v.PROJECT: project,
            },
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }
