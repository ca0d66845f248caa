"""The ``storage`` section: what every user's server mounts (section 3 of the AI_INFN paper).

Every part is optional; a part left out is simply not mounted. Paths inside the platform file
system are relative to the NFS export; paths in the pod (``mountPath``) are absolute.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .base import ConfigSection
from .values import ImageReference, Size, Slug, parse_memory, shown

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CVMFS_REPO = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or ".." in value.split("/") or value != posixpath.normpath(value):
        raise ValueError(
            f'expected an absolute, normalized path like "/scratch" (got {shown(value)})'
        )
    if value == "/":
        raise ValueError('expected a path below "/" (got "/")')
    return value


def _relative_dir(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            'expected a folder relative to the export, like "homes" or "platform/envs", '
            f"without '..' (got {shown(value)})"
        )
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            "expected a Kubernetes name (lowercase letters, digits, '-' and '.') like "
            f'"nvme-local" (got {shown(value)})'
        )
    return value


def _cvmfs_repository(value: str) -> str:
    if not _CVMFS_REPO.fullmatch(value):
        raise ValueError(f'expected a CVMFS repository like "sft.cern.ch" (got {shown(value)})')
    return value


def _bucket_name(value: str) -> str:
    if not _BUCKET.fullmatch(value) or ".." in value:
        raise ValueError(
            "expected an S3 bucket name (3-63 lowercase letters, digits, '.' and '-') "
            f"(got {shown(value)})"
        )
    return value


AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
RelativeDir = Annotated[str, AfterValidator(_relative_dir)]
KubeName = Annotated[str, AfterValidator(_dns_subdomain)]
CvmfsRepository = Annotated[str, AfterValidator(_cvmfs_repository)]
BucketName = Annotated[str, AfterValidator(_bucket_name)]


class NfsExport(ConfigSection):
    """The platform file system: an NFS export (or a ReadWriteMany claim holding the same tree)."""

    server: str = Field(
        "",
        description="NFS server, e.g. `nfs.storage.svc.cluster.local`. Give `server` and "
        "`path`, or `claimName`.",
    )
    path: AbsolutePath = Field("/exports", description="Exported path, e.g. `/exports`.")
    claim_name: KubeName | None = Field(
        None,
        description="A PersistentVolumeClaim (ReadWriteMany) to use instead of `server`/`path`, "
        "e.g. `platform-fs`. Default: unset.",
    )
    homes_dir: RelativeDir = Field(
        "homes", description="Folder of the users' homes inside the export. Default `homes`."
    )
    projects_dir: RelativeDir = Field(
        "projects",
        description="Folder of the projects' shared folders inside the export. Default `projects`.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> NfsExport:
        if bool(self.server) == bool(self.claim_name):
            raise ValueError("give either server (with path) or claimName")
        return self


class HomeStorage(ConfigSection):
    """Each user's home: ``<export>/<homesDir>/<user folder>``, created at spawn (mode 0700)."""

    mount_path: AbsolutePath = Field(
        "/home/jovyan",
        description="Where the home is mounted; also `$HOME`. Default `/home/jovyan`.",
    )
    uid_base: int | None = Field(
        100000,
        ge=1000,
        le=2**31 - 2**24,
        description="Each user's notebooks and Bunshin jobs run as their own numeric user id, "
        "`uidBase + <the user's number>`, which also owns their home: files in shared "
        "project folders show who wrote them, and a home is protected by the file system, not "
        "only by which folder is mounted. The number is allocated once per username in the hub "
        "database (table `aiinfn_user_ids`) and never reused, even when the hub user is "
        "deleted. Back the database up: if it is lost, numbers are allocated again and a "
        "server whose home belongs to another id refuses to start, with a message (an "
        "administrator then re-owns the home: `chown -R <new id> <home>`). Empty (`null`): "
        "everyone runs as `uid` (shared id; `check-config` warns). Default 100000.",
    )
    uid: int = Field(
        1000,
        ge=1,
        description="The shared user id when `uidBase` is empty, e.g. `1000` (jovyan). "
        "Default 1000.",
    )
    gid: int = Field(100, ge=0, description="Primary group id of notebooks. Default 100.")

    def user_uid(self, user_number: int) -> int:
        """The numeric user id of the user whose number is ``user_number``."""
        return self.uid if self.uid_base is None else self.uid_base + user_number


class ProjectFolders(ConfigSection):
    """Projects' shared folders: ``<export>/<projectsDir>/<project>``, setgid, mode 2770."""

    mount_path: AbsolutePath = Field(
        "/home/jovyan/projects",
        description="Each of the user's projects is mounted at `<mountPath>/<project>`. "
        "Default `/home/jovyan/projects`.",
    )


class SharedArea(ConfigSection):
    """A folder of the export mounted in every server: read-only but for its maintainers."""

    dir: RelativeDir = Field(description="Folder inside the export, e.g. `envs`.")
    mount_path: AbsolutePath = Field(description="Where it is mounted, e.g. `/envs`.")
    maintainers_group: str = Field(
        "",
        description="Members of this hub group get it read-write, e.g. `env-maintainers`. "
        "Default: nobody (read-only for all).",
    )


class Scratch(ConfigSection):
    """Fast ephemeral disk (the node's NVMe), wiped when the server stops."""

    mount_path: AbsolutePath = Field("/scratch", description="Default `/scratch`.")
    storage_class: KubeName | None = Field(
        None,
        description="StorageClass of a generic ephemeral volume on the node's NVMe, e.g. "
        "`nvme-local` (TopoLVM, local-path...). Default: unset, an `emptyDir` with a size limit.",
    )
    size_choices: list[Size] = Field(
        default_factory=lambda: ["10Gi", "50Gi", "100Gi"],
        min_length=1,
        description="Sizes offered on the spawn form, e.g. `[10Gi, 50Gi]`.",
    )
    default_size: Size | None = Field(
        None, description="Preselected size, one of `sizeChoices`. Default: the first."
    )

    @model_validator(mode="after")
    def _default_in_choices(self) -> Scratch:
        sizes = [parse_memory(s) for s in self.size_choices]
        if self.default_size is not None and parse_memory(self.default_size) not in sizes:
            raise ValueError(f"defaultSize {shown(self.default_size)} is not one of sizeChoices")
        return self

    def default(self) -> str:
        return self.default_size or self.size_choices[0]


class Cvmfs(ConfigSection):
    """CVMFS repositories, read-only, through the CVMFS CSI driver or a prepared claim."""

    repositories: list[CvmfsRepository] = Field(
        min_length=1, description="Repositories, e.g. `[sft.cern.ch, atlas.cern.ch]`."
    )
    mount_path: AbsolutePath = Field("/cvmfs", description="Default `/cvmfs`.")
    driver: KubeName = Field(
        "cvmfs.csi.cern.ch", description="CSI driver name. Default `cvmfs.csi.cern.ch`."
    )
    claim_name: KubeName | None = Field(
        None,
        description="Instead of inline CSI volumes, a claim exposing all of `/cvmfs` (the CSI "
        "driver's automount mode), e.g. `cvmfs`. Default: unset.",
    )


class Buckets(ConfigSection):
    """Object-store buckets mounted with rclone, authenticated with the user's IAM token.

    ``sidecar`` mode runs rclone in a privileged sidecar of the user's pod (Kubernetes allows
    the Bidirectional mount propagation it needs only to privileged containers; the notebook
    container stays "restricted"). ``csi`` mode leaves the mount to an rclone/S3 CSI driver
    whose node plugin holds the privilege, with the user's token Secret as node-publish secret:
    no privileged container in user pods, but the driver must do the STS exchange itself.
    """

    mode: Literal["sidecar", "csi"] = Field("sidecar", description="`sidecar` or `csi`.")
    endpoint: str = Field(description="S3 endpoint URL, e.g. `https://rgw.cloud.infn.it`.")
    sts_endpoint: str = Field(
        "", description="STS endpoint for AssumeRoleWithWebIdentity. Default: `endpoint`."
    )
    role_arn: str = Field(
        "arn:aws:iam:::role/IAMaccess",
        description="Role assumed with the IAM token (RGW accepts any for OIDC users).",
    )
    region: str = Field("default", description="S3 region. Default `default`.")
    provider: str = Field("Ceph", description="rclone S3 provider name. Default `Ceph`.")
    user_bucket: str = Field(
        "{username}",
        description="The user's own bucket; `{username}` is replaced by the hub username. "
        "Empty: no user bucket.",
    )
    mount_path: AbsolutePath = Field(
        "/home/jovyan/buckets",
        description="Each bucket is mounted at `<mountPath>/<bucket>`.",
    )
    image: ImageReference = Field(
        "docker.io/rclone/rclone:1.68", description="rclone image of the sidecar."
    )
    csi_driver: KubeName = Field(
        "csi-rclone", description="CSI driver name in `csi` mode. Default `csi-rclone`."
    )
    mount_options: list[str] = Field(
        default_factory=lambda: ["--vfs-cache-mode=writes", "--dir-cache-time=30s"],
        description="Extra `rclone mount` flags.",
    )
    token_audience: str = Field(
        "",
        max_length=200,
        description="Audience the hub exchanges each user's login token for (RFC 8693 token "
        "exchange, e.g. `object-store`), so the object store only ever receives a token "
        "limited to it (the default of `IAMAuthenticator.storage_token_audience`). Empty: the "
        "whole login token reaches the object store and every rclone sidecar; `check-config` "
        "warns.",
    )


class Storage(ConfigSection):
    """What every server mounts; each part optional."""

    nfs: NfsExport | None = Field(
        None, description="The platform file system (homes, projects, shared areas)."
    )
    home: HomeStorage = Field(default_factory=HomeStorage, description="Homes (needs `nfs`).")
    projects: ProjectFolders = Field(
        default_factory=ProjectFolders, description="Project folders (needs `nfs`)."
    )
    environments: SharedArea | None = Field(
        None,
        description="Managed software environments (conda envs, Apptainer images), e.g. "
        "`{dir: envs, mountPath: /envs, maintainersGroup: env-maintainers}`.",
    )
    shared: SharedArea | None = Field(
        None, description="The public shared area, e.g. `{dir: shared, mountPath: /shared}`."
    )
    scratch: Scratch | None = Field(None, description="Ephemeral NVMe scratch.")
    cvmfs: Cvmfs | None = Field(None, description="CVMFS repositories.")
    buckets: Buckets | None = Field(None, description="Object-store buckets (rclone).")
    init_image: ImageReference = Field(
        "docker.io/library/busybox:1.37",
        description="Image of the init container creating homes and project folders.",
    )

    def summary(self) -> str:
        """One line: which parts are configured."""
        parts = []
        if self.nfs is not None:
            where = self.nfs.claim_name or f"{self.nfs.server}:{self.nfs.path}"
            parts.append(f"homes and project folders on {where}")
        parts += [name for name in ("environments", "shared") if getattr(self, name) is not None]
        if self.scratch is not None:
            kind = self.scratch.storage_class or "emptyDir"
            parts.append(f"scratch ({kind}, {', '.join(self.scratch.size_choices)})")
        if self.cvmfs is not None:
            parts.append(f"cvmfs ({len(self.cvmfs.repositories)} repositories)")
        if self.buckets is not None:
            parts.append(f"buckets ({self.buckets.mode})")
        return ", ".join(parts) if parts else "none"

    @model_validator(mode="after")
    def _needs_nfs(self) -> Storage:
        if self.nfs is None:
            for name in ("environments", "shared"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} needs nfs (it is a folder of the export)")
        return self


# re-exported for the project section
__all__ = [
    "BucketName",
    "Buckets",
    "Cvmfs",
    "HomeStorage",
    "NfsExport",
    "ProjectFolders",
    "Scratch",
    "SharedArea",
    "Slug",
    "Storage",
]
