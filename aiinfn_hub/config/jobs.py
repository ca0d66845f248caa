"""The ``jobs`` section: Bunshin jobs (clones of a user's server run as Kubernetes Jobs)."""

from __future__ import annotations

from pydantic import Field

from .base import ConfigSection
from .storage import KubeName
from .values import ImageReference, LabelKey, LabelValue


class Offload(ConfigSection):
    """Offloading to interLink virtual nodes, for jobs the user flags as compatible."""

    enabled: bool = Field(True, description="Offer offloading. Default true.")
    taint_key: LabelKey = Field(
        "virtual-node.interlink/no-schedule",
        description="Taint of the virtual nodes, tolerated only by offloaded jobs.",
    )
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Node labels offloaded pods must match when no Kueue flavour does it, "
        "e.g. `{virtual-node.interlink/type: virtual-kubelet}`. Default: none.",
    )


class Jobs(ConfigSection):
    """Where and how Bunshin jobs run; limits every request is checked against."""

    namespace: KubeName = Field(
        "jupyterhub", description="Namespace of the Jobs (the service's own). Default `jupyterhub`."
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
    backoff_limit: int = Field(2, ge=0, description="Retries of a failed pod.")
    ttl_seconds_after_finished: int = Field(
        7 * 24 * 3600, ge=0, description="Finished jobs are deleted after this long."
    )
    max_sandbox_bytes: int = Field(
        256 * 1024, ge=1, description="Total size of the small files shipped with a job."
    )
    images: list[ImageReference] = Field(
        default_factory=list,
        description="Images jobs may use besides their server's own. Default: none.",
    )
    offload: Offload = Field(default_factory=Offload, description="interLink offloading.")
    cohort: KubeName = Field(
        "aiinfn", description="Kueue cohort joining the projects' ClusterQueues and the pool."
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
