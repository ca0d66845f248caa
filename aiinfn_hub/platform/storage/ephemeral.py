"""Scratch (ephemeral NVMe disk) and CVMFS: volumes that are not the platform file system."""

from __future__ import annotations

import posixpath
from typing import Any

from ...config.storage import Cvmfs, Scratch
from ..vocabulary import COMPONENT, COMPONENT_SCRATCH
from .naming import volume_name

JSON = dict[str, Any]
SCRATCH_VOLUME = "scratch"
CVMFS_ALL_VOLUME = "cvmfs"


def scratch_volume(scratch: Scratch, size: str) -> JSON:
    """A generic ephemeral volume of ``size`` on the scratch class, or a size-capped emptyDir.

    Either way it lives and dies with the pod: the data is wiped when the server stops.
    """
    if scratch.storage_class is None:
        return {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": size}}
    return {
        "name": SCRATCH_VOLUME,
        "ephemeral": {
            "volumeClaimTemplate": {
                "metadata": {"labels": {COMPONENT: COMPONENT_SCRATCH}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": scratch.storage_class,
                    "resources": {"requests": {"storage": size}},
                },
            }
        },
    }


def scratch_mount(scratch: Scratch) -> JSON:
    return {"name": SCRATCH_VOLUME, "mountPath": scratch.mount_path}


def cvmfs_volumes(cvmfs: Cvmfs) -> list[JSON]:
    """One inline CSI volume per repository, or the one claim of the driver's automount mode."""
    if cvmfs.claim_name:
        return [
            {
                "name": CVMFS_ALL_VOLUME,
                "persistentVolumeClaim": {"claimName": cvmfs.claim_name, "readOnly": True},
            }
        ]
    return [
        {
            "name": volume_name("cvmfs", repo),
            "csi": {
                "driver": cvmfs.driver,
                "readOnly": True,
                "volumeAttributes": {"repository": repo},
            },
        }
        for repo in cvmfs.repositories
    ]


def cvmfs_mounts(cvmfs: Cvmfs) -> list[JSON]:
    """Read-only; HostToContainer so repositories the driver mounts later show up too."""
    if cvmfs.claim_name:
        return [
            {
                "name": CVMFS_ALL_VOLUME,
                "mountPath": cvmfs.mount_path,
                "readOnly": True,
                "mountPropagation": "HostToContainer",
            }
        ]
    return [
        {
            "name": volume_name("cvmfs", repo),
            "mountPath": posixpath.join(cvmfs.mount_path, repo),
            "readOnly": True,
            "mountPropagation": "HostToContainer",
        }
        for repo in cvmfs.repositories
    ]
