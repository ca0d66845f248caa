"""The platform file system (NFS): homes, project folders, shared areas, and their creation.

One pod volume (``platform-fs``) holds the whole export; each mount picks its folder with
``subPath``, so a pod sees its user's home and its user's projects only. Folders are created by
a short init container (``storage-init``, see ``scripts/storage-init.sh``) that mounts the
export root: the hub never touches the file system and needs no privilege, and the script
refuses symbolic links instead of following them.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ...config import PlatformConfig, Project
from ...config.storage import NfsExport, SharedArea
from .naming import user_folder
from .scripts import script

JSON = dict[str, Any]
VOLUME = "platform-fs"
INIT_CONTAINER = "storage-init"
EXPORT_ROOT = "/export"  # where the init container mounts the export
HOME_MODE = "0700"
PROJECT_MODE = "2770"
PARENT_MODE = "0755"


def nfs_volume(nfs: NfsExport) -> JSON:
    if nfs.claim_name:
        return {"name": VOLUME, "persistentVolumeClaim": {"claimName": nfs.claim_name}}
    return {"name": VOLUME, "nfs": {"server": nfs.server, "path": nfs.path}}


def home_path(nfs: NfsExport, username: str) -> str:
    """The home's folder, relative to the export root."""
    return posixpath.join(nfs.homes_dir, user_folder(username))


def project_path(nfs: NfsExport, project: str) -> str:
    return posixpath.join(nfs.projects_dir, project)


def shared_projects(config: PlatformConfig, groups: frozenset[str]) -> list[tuple[str, Project]]:
    """The user's projects that have a shared folder (sorted by name)."""
    return [
        (name, project)
        for name, project in sorted(config.projects.items())
        if name in groups and project.storage.shared_folder and project.storage.gid is not None
    ]


def home_mount(config: PlatformConfig, username: str) -> JSON:
    nfs = config.storage.nfs
    assert nfs is not None
    return {
        "name": VOLUME,
        "mountPath": config.storage.home.mount_path,
        "subPath": home_path(nfs, username),
    }


def project_mounts(config: PlatformConfig, groups: frozenset[str]) -> list[JSON]:
    nfs = config.storage.nfs
    assert nfs is not None
    base = config.storage.projects.mount_path
    return [
        {
            "name": VOLUME,
            "mountPath": posixpath.join(base, name),
            "subPath": project_path(nfs, name),
        }
        for name, _ in shared_projects(config, groups)
    ]


def shared_area_mount(area: SharedArea, groups: frozenset[str]) -> JSON:
    """Read-only, except for members of the area's maintainers group."""
    writable = bool(area.maintainers_group) and area.maintainers_group in groups
    return {
        "name": VOLUME,
        "mountPath": area.mount_path,
        "subPath": area.dir,
        "readOnly": not writable,
    }


def folders_to_create(
    config: PlatformConfig, username: str, groups: frozenset[str], uid: int
) -> list[str]:
    """``path:uid:gid:mode[:owned]`` for storage-init, parents first (relative to EXPORT_ROOT).

    The home is owned by the user's own ``uid``, and an existing home must already be (else
    the start is refused: it would be someone else's files).
    """
    nfs, home = config.storage.nfs, config.storage.home
    assert nfs is not None
    home_dir = posixpath.join(EXPORT_ROOT, home_path(nfs, username))
    specs = [
        f"{posixpath.join(EXPORT_ROOT, nfs.homes_dir)}:0:0:{PARENT_MODE}",
        f"{home_dir}:{uid}:{home.gid}:{HOME_MODE}:owned",
    ]
    projects = shared_projects(config, groups)
    if projects:
        specs.append(f"{posixpath.join(EXPORT_ROOT, nfs.projects_dir)}:0:0:{PARENT_MODE}")
    for name, project in projects:
        path = posixpath.join(EXPORT_ROOT, project_path(nfs, name))
        specs.append(f"{path}:0:{project.storage.gid}:{PROJECT_MODE}")
    return specs


def init_container(config: PlatformConfig, username: str, groups: frozenset[str], uid: int) -> JSON:
    """Creates missing folders; root with only the capabilities chown/chmod need."""
    return {
        "name": INIT_CONTAINER,
        "image": config.storage.init_image,
        "command": ["sh", "-c", script("storage-init.sh"), INIT_CONTAINER],
        "args": folders_to_create(config, username, groups, uid),
        "volumeMounts": [{"name": VOLUME, "mountPath": EXPORT_ROOT}],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "32Mi"},
        },
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
