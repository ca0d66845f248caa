"""Everything a user's server mounts, as one pure function of config + user + projects.

``storage_plan`` returns a :class:`StoragePlan`; ``spawner_settings`` turns it into KubeSpawner
trait values on top of the hub's own (``base``), so applying a plan twice, or after a restart
of the hub, gives the same pod: nothing is appended twice, nothing is lost. A group lost at the
last login is simply not in the next plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...config import PlatformConfig
from ...kubemodel.literal import literal
from ..vocabulary import TOKEN_KEY
from . import buckets as bucket_builders
from . import ephemeral, nfs

JSON = dict[str, Any]
# KubeSpawner traits a plan sets (on top of the values the hub configuration gives them)
TRAITS = (
    "volumes",
    "volume_mounts",
    "init_containers",
    "extra_containers",
    "supplemental_gids",
    "environment",
)


@dataclass(frozen=True)
class StoragePlan:
    """Volumes, the notebook container's mounts, helper containers and ids for one server."""

    volumes: list[JSON] = field(default_factory=list)
    mounts: list[JSON] = field(default_factory=list)
    init_containers: list[JSON] = field(default_factory=list)
    sidecars: list[JSON] = field(default_factory=list)
    supplemental_gids: list[int] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    uid: int | None = None
    gid: int | None = None
    working_dir: str | None = None
    buckets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def storage_plan(
    config: PlatformConfig,
    username: str,
    groups: frozenset[str],
    *,
    scratch_size: str | None,
    token_secret: str,
    user_number: int,
) -> StoragePlan:
    """The storage of ``username``'s server; ``groups`` are the user's hub groups now.

    ``user_number`` is the user's own number (see :mod:`aiinfn_hub.spawner.user_ids`): the
    server runs as, and the home belongs to, ``storage.home.user_uid(user_number)``, a numeric
    id no other user has.
    """
    storage = config.storage
    volumes: list[JSON] = []
    mounts: list[JSON] = []
    init: list[JSON] = []
    sidecars: list[JSON] = []
    gids: list[int] = []
    env: dict[str, str] = {}
    notes: list[str] = []
    uid = gid = None
    working_dir = None
    user_uid = storage.home.user_uid(user_number)

    if storage.nfs is not None:
        volumes.append(nfs.nfs_volume(storage.nfs))
        mounts.append(nfs.home_mount(config, username))
        mounts += nfs.project_mounts(config, groups)
        for area in (storage.environments, storage.shared):
            if area is not None:
                mounts.append(nfs.shared_area_mount(area, groups))
        init.append(nfs.init_container(config, username, groups, user_uid))
        gids = [p.storage.gid for _, p in nfs.shared_projects(config, groups) if p.storage.gid]
        uid, gid = user_uid, storage.home.gid
        working_dir = storage.home.mount_path
        env["HOME"] = storage.home.mount_path

    if storage.scratch is not None:
        size = scratch_size or storage.scratch.default()
        volumes.append(ephemeral.scratch_volume(storage.scratch, size))
        mounts.append(ephemeral.scratch_mount(storage.scratch))
        env["SCRATCH"] = storage.scratch.mount_path

    if storage.cvmfs is not None:
        volumes += ephemeral.cvmfs_volumes(storage.cvmfs)
        mounts += ephemeral.cvmfs_mounts(storage.cvmfs)

    names = bucket_builders.bucket_names(config, username, groups)
    buckets = storage.buckets
    if buckets is not None:
        if buckets.user_bucket and bucket_builders.user_bucket(buckets, username) is None:
            notes.append(
                f"your username does not make a valid bucket name with {buckets.user_bucket!r}; "
                "no personal bucket is mounted (ask the administrators)"
            )
        if names and buckets.mode == "sidecar":
            volumes += bucket_builders.sidecar_volumes(token_secret)
            mounts.append(bucket_builders.notebook_mount(buckets))
            sidecars.append(bucket_builders.sidecar_container(buckets, username, names, TOKEN_KEY))
        elif names:
            volumes += bucket_builders.csi_volumes(buckets, names, token_secret)
            mounts += bucket_builders.csi_mounts(buckets, names)

    return StoragePlan(
        volumes=volumes,
        mounts=mounts,
        init_containers=init,
        sidecars=sidecars,
        supplemental_gids=sorted(set(gids)),
        environment=env,
        uid=uid,
        gid=gid,
        working_dir=working_dir,
        buckets=names if buckets is not None and buckets.mode == "sidecar" else [],
        notes=notes,
    )


def spawner_settings(plan: StoragePlan, base: dict[str, Any]) -> dict[str, Any]:
    """KubeSpawner trait values: the hub's own ``base`` values plus the plan's, in that order.

    The plan's strings are final, so their braces are escaped from kubespawner's templating;
    ``base`` values keep theirs (the hub configuration may use ``{username}``).
    """
    settings: dict[str, Any] = {
        "volumes": list(base.get("volumes") or []) + literal(plan.volumes),
        "volume_mounts": list(base.get("volume_mounts") or []) + literal(plan.mounts),
        "init_containers": list(base.get("init_containers") or []) + literal(plan.init_containers),
        "extra_containers": list(base.get("extra_containers") or []) + literal(plan.sidecars),
        "supplemental_gids": sorted(
            set(base.get("supplemental_gids") or []) | set(plan.supplemental_gids)
        ),
        "environment": {**dict(base.get("environment") or {}), **literal(plan.environment)},
    }
    if plan.uid is not None:
        settings["uid"] = plan.uid
        settings["gid"] = plan.gid
    if plan.working_dir is not None:
        settings["working_dir"] = plan.working_dir
    return settings
