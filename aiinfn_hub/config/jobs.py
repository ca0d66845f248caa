"""The ``jobs`` section: Bunshin jobs (clones of a user's server run as Kubernetes Jobs)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .base import ConfigSection
from .storage import AbsolutePath, KubeName
from .values import ExtendedResource, ImageReference, LabelKey, LabelValue, shown

_META_URL = re.compile(r"[a-z][a-z0-9+]*://[^\s]+")
_FOLDER = re.compile(r"[A-Za-z0-9._/-]+")


def _metadata_url(value: str) -> str:
    if not _META_URL.fullmatch(value):
        raise ValueError(
            'expected a JuiceFS metadata URL like "rediss://juicefs-meta.example.org:6379/1" '
            f"(got {shown(value)})"
        )
    userinfo = value.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
    query = value.partition("?")[2].lower()
    if ":" in userinfo or "password=" in query:
        raise ValueError(
            "the metadata URL must not hold a password (it would be shown to whoever reads the "
            "configuration): put it in the credentials folder as `meta-password`"
        )
    return value


def _juicefs_folder(value: str) -> str:
    bare = value.replace("{user}", "u").replace("{project}", "p")
    parts = bare.split("/")
    if (
        not _FOLDER.fullmatch(bare)
        or value.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(
            'expected a folder inside the JuiceFS file system like "homes/{user}": letters, '
            "digits, '.', '_', '-' and '/', without '..'; placeholders: {user}, {project} "
            f"(got {shown(value)})"
        )
    return value


MetadataUrl = Annotated[str, AfterValidator(_metadata_url)]
JuiceFSFolder = Annotated[str, AfterValidator(_juicefs_folder)]


class JuiceFS(ConfigSection):
    """A JuiceFS file system standing in for the platform file system in offloaded jobs.

    An offloaded pod runs on another site, so NFS cannot follow it; a JuiceFS file system
    (metadata in Redis or PostgreSQL, data in S3) can. A native sidecar of the job's pod mounts
    it with FUSE and the job's home and project folders are folders of it. Its connection
    details are in a Secret per project that the Bunshin service writes in the jobs' namespace
    from its own credentials folder: users never see them, but they travel with the pod, so
    give each project its own file system or credentials when projects must not read each
    other's files. The metadata engine and the object store must be reachable from the sites.
    """

    metadata_url: MetadataUrl = Field(
        description="Metadata engine URL, without password, e.g. "
        "`rediss://juicefs-meta.example.org:6379/1`. `{project}` is replaced by the job's "
        "project, for one file system per project (e.g. "
        "`postgres://meta.example.org:5432/jfs_{project}`)."
    )
    credentials_dir: AbsolutePath = Field(
        "/etc/bunshin/juicefs",
        description="Folder of the Bunshin service (a Secret of its own, mounted) with the "
        "metadata engine's password: `<project>.meta-password` for one project, else "
        "`meta-password`; no file: no password. Default `/etc/bunshin/juicefs`.",
    )
    image: ImageReference = Field(
        "docker.io/juicedata/mount:ce-v1.2.3",
        description="Image of the mount sidecar: `juicefs` and `sh` on its PATH.",
    )
    home: JuiceFSFolder | None = Field(
        "homes/{user}",
        description="Folder standing in for the user's home (`{user}`: the user's folder "
        "name), created with the home's owner and mode 0700. Empty: homes are not offered "
        "and offloading a server with a home is refused. Default `homes/{user}`.",
    )
    project: JuiceFSFolder | None = Field(
        "projects/{project}",
        description="Folder standing in for the job's project folder (setgid, mode 2770). "
        "Offloaded jobs get only their own project's folder. Default `projects/{project}`.",
    )
    environments: JuiceFSFolder | None = Field(
        None,
        description="Folder holding a copy of the managed environments area, mounted "
        "read-only where the server has it. Empty (default): offloading a server that mounts "
        "the environments area is refused.",
    )
    shared: JuiceFSFolder | None = Field(
        None,
        description="The same for the public shared area. Default: none.",
    )
    mount_options: list[str] = Field(
        default_factory=list,
        description="Extra `juicefs mount` flags, e.g. `[--cache-size=10240]`.",
    )

    @model_validator(mode="after")
    def _one_folder_each(self) -> JuiceFS:
        """A home folder without ``{user}`` would be everyone's home (with one owner)."""
        for key, placeholder in (("home", "{user}"), ("project", "{project}")):
            value = getattr(self, key)
            if value is not None and placeholder not in value:
                raise ValueError(
                    f"{key}: must contain {placeholder}, or every user's job would share one "
                    f"folder (got {shown(value)})"
                )
        return self


class Offload(ConfigSection):
    """Offloading to interLink virtual nodes, for jobs the user flags as compatible."""

    enabled: bool = Field(True, description="Offer offloading. Default true.")
    taint_key: LabelKey = Field(
        "virtual-node.interlink/no-schedule",
        description="Taint of the virtual nodes, tolerated only by offloaded jobs.",
    )
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Node labels that tell the virtual nodes apart, e.g. `{kubernetes.io/"
        "hostname: vk-leonardo}`. Default: none, meaning `virtual-node.interlink/type: "
        "virtual-kubelet` (what interLink sets). Offloaded pods select them (with `localFirst` "
        "as the alternative to local nodes) and so does the `interlink` Kueue flavour.",
    )
    local_first: bool = Field(
        True,
        description="Offloading marks a job as able to run remotely: true (default), its "
        "pods run on local nodes while there is room and on a virtual node otherwise, "
        "including after a notebook takes their GPU back (local nodes are preferred, virtual "
        "ones allowed, as Kueue orders the local flavours before `interlink`); false, an "
        "offloaded job always runs on a virtual node.",
    )
    accelerators: dict[ExtendedResource, int] = Field(
        default_factory=dict,
        description="Accelerator units the virtual nodes offer offloaded jobs, by resource "
        "name, e.g. `{nvidia.com/gpu: 8}`: the quota of the Kueue flavour `interlink-<resource>` "
        "(a remote site's GPU is of the site's model, not necessarily the one asked for). A "
        "resource not listed: jobs needing it never run on virtual nodes under Kueue. Default: "
        "none.",
    )

    @model_validator(mode="after")
    def _counts_not_negative(self) -> Offload:
        for resource, count in self.accelerators.items():
            if count < 0:
                raise ValueError(f"accelerators: {resource} must be 0 or more (got {count})")
        return self

    cvmfs: Literal["refuse", "site"] = Field(
        "refuse",
        description="CVMFS in offloaded jobs: `site` when every site mounts the repositories "
        "at the same path on its nodes (WLCG sites do), so the job mounts the node's folder "
        "(hostPath, read-only); `refuse` (default): a server mounting CVMFS is offloaded only "
        "without its storage.",
    )
    juicefs: JuiceFS | None = Field(
        None,
        description="JuiceFS file system for offloaded jobs' home and project folders. "
        "Without it, offloading a server that mounts them is refused (with the list).",
    )


class Jobs(ConfigSection):
    """Where and how Bunshin jobs run; limits every request is checked against."""

    namespace: KubeName = Field(
        "bunshin",
        description="Namespace of the Jobs, their sandboxes and the service's Secrets: one of "
        "the service's own, e.g. `bunshin` (default). The service writes Secrets there, so it "
        "refuses to start when this is the hub's namespace or the servers' (where every "
        "user's token Secret lives) unless `allowHubNamespace` is set. A job runs in this "
        "namespace, not its server's: folders of the server that use a PersistentVolumeClaim "
        "or a Secret of the servers' namespace cannot follow it (such a clone is refused, "
        "with the list), and buckets never follow.",
    )
    allow_hub_namespace: bool = Field(
        False,
        description="Let `namespace` be the hub's or the servers' namespace (where the "
        "service then needs Secret write access next to every user's token Secret and the "
        "hub's own). Default false: the service refuses to start with such a namespace.",
    )
    queue_name: str = Field(
        "{project}",
        description="Kueue LocalQueue of a job; `{project}` is the user's project. Default "
        "`{project}`.",
    )
    priority_class: KubeName = Field(
        "bunshin-batch",
        description="PriorityClass of job pods: negative with `preemptionPolicy: Never`, so "
        "notebooks evict them. Default `bunshin-batch`.",
    )
    workload_priority_class: KubeName | None = Field(
        "batch-normal",
        description="Kueue WorkloadPriorityClass ordering the queue. Empty: none.",
    )
    max_runtime_seconds: int = Field(
        86400, ge=60, description="Longest runtime a job may ask for (and its default)."
    )
    max_completions: int = Field(100, ge=1, description="Most completions of one job.")
    max_parallelism: int = Field(20, ge=1, description="Most pods of one job at a time.")
    max_active_jobs_per_user: int = Field(
        20, ge=1, description="Jobs a user may have queued or running at once."
    )
    backoff_limit: int = Field(
        0,
        ge=0,
        le=100,
        description="Retries of a job whose command fails, when the request does not ask for "
        "some (the Job's `backoffLimit`): 0 (default), a failing command is not run again and "
        "the job fails at once with the command's exit code and the end of its log. A retry "
        "runs the command again from the start, so only commands that may fail by chance "
        "(a flaky download) should ask for retries. At most `maxRetries`. Pods the cluster "
        "stops (a notebook taking its GPU back, a drain) are never counted: they run again "
        "whatever this says.",
    )
    max_retries: int = Field(
        3,
        ge=0,
        le=100,
        description="Most retries a request may ask for (`retries` of the API, the page's "
        '"Retries" field, `bunshin submit --retries`). Default 3; 0: no retries at all; at '
        "most 100.",
    )
    ttl_seconds_after_finished: int = Field(
        7 * 24 * 3600, ge=0, description="Finished jobs are deleted after this long."
    )
    max_sandbox_bytes: int = Field(
        256 * 1024, ge=1, description="Total size of the small files shipped with a job."
    )
    max_finished_jobs_per_user: int = Field(
        20,
        ge=0,
        description="Finished (succeeded, failed or cancelled) jobs a user keeps, with their "
        "sandbox files, before `ttlSecondsAfterFinished` removes them: each new submission "
        "deletes that user's oldest finished jobs beyond this number, so a loop of short jobs "
        "cannot fill the cluster's database (cancelled jobs are never removed by the TTL). "
        "Default 20.",
    )
    max_request_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request body the service reads, in bytes; larger ones are "
        "refused (400) before they are read. At least twice `maxSandboxBytes`, so a sandbox "
        "within its limit always fits in its JSON. Default 1 MiB (tornado's own: 100 MB).",
    )
    max_env_value_bytes: int = Field(
        4096,
        ge=1,
        description="Longest value (UTF-8 bytes) of one `env` variable of a request (at most "
        "64 variables). Default 4096; ship larger inputs as sandbox files.",
    )
    max_log_bytes_per_pod: int = Field(
        1024 * 1024,
        ge=1024,
        description="Most bytes of one pod's log in one answer (the `limitBytes` of the "
        "Kubernetes log request); the answer says when a log was cut. Default 1 MiB.",
    )
    max_log_bytes_per_response: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Most log bytes of all pods of a job in one answer; pods past it are "
        "listed with an empty, cut log (ask for one pod's end with `tail=N`). Default 8 MiB.",
    )
    images: list[ImageReference] = Field(
        default_factory=list,
        description="Images jobs may use besides their server's own. Default: none.",
    )
    offload: Offload = Field(default_factory=Offload, description="interLink offloading.")
    cohort: KubeName = Field(
        "aiinfn", description="Kueue cohort joining the projects' ClusterQueues and the pool."
    )
    pool_queue: KubeName = Field(
        "pool",
        description="Name of the ClusterQueue holding the jobs' quota (`poolCpu`, "
        "`poolMemory`, `poolAccelerators`) that the projects' ClusterQueues borrow from. "
        "ClusterQueues are cluster-wide: a second deployment on the same cluster (an event "
        "next to the site) needs its own name here, and its own `cohort`, or applying its "
        "Kueue objects replaces the first one's quota. Must differ from every "
        "`project-<name>` (`render-kueue` refuses a clash). Default `pool`.",
    )
    pool_cpu: str = Field(
        "64", description="CPU cores the pool ClusterQueue lends to projects' jobs, e.g. `64`."
    )
    pool_memory: str = Field("256Gi", description="Memory the pool lends, e.g. `256Gi`.")
    pool_accelerators: dict[str, int] = Field(
        default_factory=dict,
        description="Units of each catalogue model the pool lends to jobs, e.g. `{t4: 2, "
        "a100-1g-10gb: 3}`; models not listed get 0 (no jobs on them).",
    )
    admin_group: str = Field(
        "",
        description="Members of this hub group see and cancel every job (as hub admins do).",
    )

    @model_validator(mode="after")
    def _default_retries_allowed(self) -> Jobs:
        """The retries a job gets by default are retries a request could ask for."""
        if self.backoff_limit > self.max_retries:
            raise ValueError(
                f"backoffLimit ({self.backoff_limit}) must be at most maxRetries "
                f"({self.max_retries}): the default retries are ones a request may ask for"
            )
        return self

    @model_validator(mode="after")
    def _request_fits_a_sandbox(self) -> Jobs:
        """A sandbox within its own limit must not be cut off by the body limit first."""
        if self.max_request_bytes < 2 * self.max_sandbox_bytes:
            raise ValueError(
                f"maxRequestBytes ({self.max_request_bytes}) must be at least twice "
                f"maxSandboxBytes ({self.max_sandbox_bytes}): a sandbox within its limit must "
                "fit in a request"
            )
        return self

    def summary(self) -> str:
        """One line: where jobs go and what offloading takes along."""
        parts = [f"namespace {self.namespace}, queue {self.queue_name}"]
        offload = self.offload
        if not offload.enabled:
            parts.append("no offloading")
        else:
            taken = []
            if offload.juicefs is not None:
                areas = [
                    name
                    for name in ("home", "project", "environments", "shared")
                    if getattr(offload.juicefs, name) is not None
                ]
                taken.append(f"JuiceFS for {', '.join(areas) or 'nothing'}")
            if offload.cvmfs == "site":
                taken.append("the sites' CVMFS")
            parts.append(
                f"offloading past {offload.taint_key}"
                + (f" with {' and '.join(taken)}" if taken else " without storage")
            )
        return ", ".join(parts)
