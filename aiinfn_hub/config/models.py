"""The sections of the platform configuration, as strict pydantic models.

Every field's ``description`` is the documentation administrators read: what the key does, its
default, and an example. Keys are camelCase because the same mapping sits in the hub's Helm
values (z2jh style); Python code uses the snake_case attribute names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from .base import ConfigSection
from .errors import Issues
from .jobs import Jobs
from .storage import BucketName, Storage
from .values import (
    Cores,
    ExtendedResource,
    ImageReference,
    LabelKey,
    LabelValue,
    Size,
    Slug,
    check_label_key,
    parse_memory,
    shown,
)

AcceleratorKind = Literal["gpu", "mig", "fpga"]
ACCELERATOR_KINDS: tuple[str, ...] = get_args(AcceleratorKind)


def _repeats(values: Sequence[Hashable]) -> Iterator[tuple[int, int]]:
    """``(index, index of its first occurrence)`` for every value already seen earlier."""
    first: dict[Hashable, int] = {}
    for i, value in enumerate(values):
        if value in first:
            yield i, first[value]
        else:
            first[value] = i


def _toleration_key(value: str) -> str:
    return check_label_key(value) if value else value


class Toleration(ConfigSection):
    """A Kubernetes toleration given to pods that use an accelerator (same keys as in a pod)."""

    key: Annotated[str, AfterValidator(_toleration_key)] = Field(
        "",
        description="Taint key to tolerate, e.g. `nvidia.com/gpu`. Empty (the default) with "
        "operator `Exists` tolerates every taint.",
    )
    operator: Literal["Exists", "Equal"] = Field(
        "Equal",
        description="`Equal` (default) tolerates taints whose value is `value`; `Exists` "
        "tolerates the key whatever its value, e.g. `Exists`.",
    )
    value: LabelValue = Field(
        "", description="Taint value for `Equal`, e.g. `a100`; must stay empty with `Exists`."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""] = Field(
        "",
        description="Taint effect to tolerate, e.g. `NoSchedule`; empty (default) tolerates "
        "every effect.",
    )
    toleration_seconds: int | None = Field(
        None,
        ge=0,
        description="Only with effect `NoExecute`: how long the pod stays once the taint "
        "appears, e.g. `300`; unset (default) means forever.",
    )

    @model_validator(mode="after")
    def _kubernetes_rules(self) -> Toleration:
        """The rules the API server applies to a pod's tolerations."""
        issues = Issues()
        if self.operator == "Exists" and self.value:
            issues.add(
                ("value",), f'must be empty when operator is "Exists" (got {shown(self.value)})'
            )
        if not self.key and self.operator != "Exists":
            issues.add(
                ("operator",),
                'expected "Exists" when key is empty (an empty key tolerates every taint)',
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            issues.add(
                ("tolerationSeconds",),
                f'only applies to effect "NoExecute" (effect is {shown(self.effect)})',
            )
        issues.raise_if_any()
        return self


class Accelerator(ConfigSection):
    """One model of the accelerator catalogue: a whole GPU, a MIG slice or an FPGA board."""

    name: Slug = Field(
        description="Unique short name used in the spawn form, the API and project limits, "
        "e.g. `a100` or `a100-1g-10gb`."
    )
    description: str = Field(
        min_length=1, description="What users see on the form, e.g. `NVIDIA A100 SXM4 80 GB`."
    )
    kind: AcceleratorKind = Field(
        description="`gpu` (a whole GPU), `mig` (a Multi-Instance GPU slice) or `fpga`; CUDA "
        "images are offered with `gpu` and `mig`, e.g. `gpu`."
    )
    resource: ExtendedResource = Field(
        description="Extended resource the device plugin advertises, put in the pod's limits, "
        "e.g. `nvidia.com/gpu`, `nvidia.com/mig-1g.10gb` or "
        "`amd.com/xilinx_u250_gen3x16_xdma_shell_4_1-0`."
    )
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Node labels that identify the nodes carrying this model, required "
        "(and each different) when several models share one resource name, e.g. "
        "`{nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}`. Pods of this model must run on "
        "nodes with all of them. Default: none.",
    )
    memory_gib: float = Field(
        gt=0,
        alias="memoryGiB",
        description="Device memory in GiB shown to users, e.g. `80` or `9.5`.",
    )
    preference_weight: int = Field(
        0,
        description="Order of the models on the form and in the API, higher first; ties "
        "are sorted by name, e.g. `40`. Default 0.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Tolerations given to pods using this model, for nodes tainted to keep "
        "other work away, e.g. `[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]`. "
        "Default: none.",
    )
    max_per_server: int = Field(
        1,
        ge=1,
        description="Most units of this model one user server may request, e.g. `4`. "
        "Default 1: a server gets one device unless the administrator allows more; a "
        "project's `limits.maxGpus` can lower it further.",
    )


class Image(ConfigSection):
    """A container image users can pick for their server."""

    name: Slug = Field(description="Unique short name used in the form and API, e.g. `cuda-ml`.")
    image: ImageReference = Field(
        description="OCI image reference, e.g. `harbor.cloud.infn.it/ai-infn/cuda-ml:2026.11`; "
        "pin a tag or digest so servers do not change under users."
    )
    description: str = Field(
        min_length=1, description="What users see on the form, e.g. `PyTorch and JAX on CUDA 12`."
    )
    groups: list[str] = Field(
        default_factory=list,
        description="Projects (keys of `projects`) whose members may use it, e.g. `[qml]`. "
        "Default: empty, meaning every user.",
    )
    gpu: bool = Field(
        False,
        description="Built with CUDA: offered together with `gpu` and `mig` accelerators, e.g. "
        "`true`. Default false (CPU-only).",
    )
    default: bool = Field(
        False,
        description="Pre-selected on the form, e.g. `true`. At most one image may set it; when "
        "none does, the first image is the default.",
    )


class Resources(ConfigSection):
    """The CPU and memory choices of the spawn form, and how much of them is guaranteed."""

    cpu_choices: list[Annotated[Cores, Field(gt=0)]] = Field(
        default_factory=lambda: [1.0, 2.0, 4.0, 8.0],
        min_length=1,
        description="CPU cores users may pick (the pod's CPU limit), e.g. `[1, 2, 4, 8]` "
        "(the default); fractions such as `0.5` are allowed.",
    )
    memory_choices: list[Size] = Field(
        default_factory=lambda: ["4Gi", "8Gi", "16Gi", "32Gi"],
        min_length=1,
        description="Memory sizes users may pick (the pod's memory limit) as Kubernetes "
        "quantities (suffixes Ki Mi Gi Ti, k M G T, or bytes), e.g. `[4Gi, 8Gi, 16Gi, 32Gi]` "
        "(the default).",
    )
    default_cpu: Cores | None = Field(
        None,
        description="Pre-selected CPU choice, one of `cpuChoices`, e.g. `2`. Default: the "
        "first choice. Users in no project get the choices up to it.",
    )
    default_memory: Size | None = Field(
        None,
        description="Pre-selected memory choice, one of `memoryChoices`, e.g. `8Gi`. Default: "
        "the first choice. Users in no project get the choices up to it.",
    )
    guarantee_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Requests are this fraction of the chosen CPU and memory limits. 1.0 "
        "(default) reserves everything (Guaranteed QoS, no overcommit); e.g. `0.5` lets idle "
        "notebooks share nodes, at the risk of CPU throttling or out-of-memory kills when all "
        "are busy. Accelerators are always requested whole.",
    )

    @model_validator(mode="after")
    def _choices_are_consistent(self) -> Resources:
        issues = Issues()
        for i, first in _repeats(self.cpu_choices):
            issues.add(
                ("cpuChoices", i),
                f"duplicate choice {self.cpu_choices[i]:g} (as cpuChoices[{first}])",
            )
        sizes = [parse_memory(m) for m in self.memory_choices]
        for i, first in _repeats(sizes):
            issues.add(
                ("memoryChoices", i),
                f"duplicate choice {shown(self.memory_choices[i])} (the same size as "
                f"memoryChoices[{first}], {shown(self.memory_choices[first])})",
            )
        if self.default_cpu is not None and self.default_cpu not in self.cpu_choices:
            issues.add(
                ("defaultCpu",),
                f"expected one of cpuChoices ({self.cpu_text()}) (got {self.default_cpu:g})",
            )
        if self.default_memory is not None and parse_memory(self.default_memory) not in sizes:
            issues.add(
                ("defaultMemory",),
                f"expected one of memoryChoices ({', '.join(self.memory_choices)}) "
                f"(got {shown(self.default_memory)})",
            )
        issues.raise_if_any()
        return self

    def cpu_text(self) -> str:
        """The CPU choices as administrators wrote them: ``1, 2, 4, 0.5``."""
        return ", ".join(f"{c:g}" for c in self.cpu_choices)


class ProjectLimits(ConfigSection):
    """What members of a project may use on their servers; unset keys do not limit.

    A user in several projects gets the most generous value among them.
    """

    max_gpus: int | None = Field(
        None,
        ge=0,
        description="Most accelerator units per user server, e.g. `2`; the model's "
        "`maxPerServer` still applies. Default: unset (the model's `maxPerServer`).",
    )
    max_cpu: Cores | None = Field(
        None,
        gt=0,
        description="Largest CPU choice unlocked, one of `resources.cpuChoices`, e.g. `16`. "
        "Default: unset (every choice).",
    )
    max_memory: Size | None = Field(
        None,
        description="Largest memory choice unlocked, one of `resources.memoryChoices`, e.g. "
        "`64Gi`. Default: unset (every choice).",
    )
    accelerators: list[str] | None = Field(
        None,
        description="Names of the catalogue models members may use, e.g. `[t4, a30]`; `[]` "
        "means none. Default: unset (the whole catalogue).",
    )


class ProjectStorage(ConfigSection):
    """The project's shared folder on the platform file system (NFS).

    Declared with the project so that everything about a project is configured in one place;
    the storage provisioning (home and project volumes) reads it.
    """

    shared_folder: bool = Field(
        True,
        description="Create a folder shared by the project's members and mount it in their "
        "servers, e.g. `false` for a project that keeps its data in object storage. Default true.",
    )
    quota: Size | None = Field(
        None,
        description="Size of the shared folder as a Kubernetes quantity, e.g. `500Gi`. "
        "Default: unset (no quota of its own).",
    )
    gid: int | None = Field(
        None,
        ge=1,
        description="POSIX group id owning the shared folder (setgid, mode 2770), added to "
        "members' servers as a supplemental group, e.g. `5001`. Required for a shared folder "
        "when `storage.nfs` is set.",
    )
    bucket: BucketName | None = Field(
        None,
        description="The project's object-store bucket, mounted for members when "
        "`storage.buckets` is set, e.g. `cms-data`. Default: none.",
    )


class Project(ConfigSection):
    """A research project: a JupyterHub group, itself an IAM group (``wlcg.groups``)."""

    display_name: str = Field(
        min_length=1, description="Name shown on forms and the admin panel, e.g. `CMS`."
    )
    description: str = Field(
        "", description="A sentence about the project, e.g. `CMS analyses on GPUs`. Default empty."
    )
    limits: ProjectLimits = Field(
        default_factory=ProjectLimits,
        description="What members may use, e.g. `{maxGpus: 1, maxCpu: 8, maxMemory: 32Gi}`. "
        "Default: no limits.",
    )
    storage: ProjectStorage = Field(
        default_factory=ProjectStorage,
        description="The project's shared folder, e.g. `{quota: 1Ti}`. Default: a shared "
        "folder without a quota of its own.",
    )


class PlatformConfig(ConfigSection):
    """The whole platform configuration: one YAML file (in the Helm values, ``hub.extraFiles``).

    A new section is one :class:`ConfigSection` subclass and one field here with a
    ``default_factory``; checks that refer to other sections go in :meth:`_cross_references`.
    """

    accelerators: list[Accelerator] = Field(
        default_factory=list,
        description="The accelerator catalogue, e.g. `[{name: t4, kind: gpu, ...}]`. Default: "
        "none (a CPU-only platform).",
    )
    images: list[Image] = Field(
        min_length=1,
        description="Images users may pick; at least one, e.g. "
        "`[{name: base, image: 'quay.io/jupyter/scipy-notebook:2025-01-06', ...}]`.",
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="CPU and memory choices, e.g. `{cpuChoices: [1, 2, 4], memoryChoices: [4Gi, "
        "8Gi]}`. Default: 1-8 cores and 4-32 GiB.",
    )
    projects: dict[Slug, Project] = Field(
        default_factory=dict,
        description="Projects by group name, e.g. `{cms: {displayName: CMS}}`. Users in no "
        "project get no accelerators and the default CPU and memory at most. Default: none.",
    )
    storage: Storage = Field(
        default_factory=Storage,
        description="What every server mounts: NFS home and project folders, managed "
        "environments, scratch, CVMFS, buckets. Default: nothing.",
    )
    jobs: Jobs = Field(
        default_factory=Jobs,
        description="Bunshin jobs: namespace, queues, priority classes, limits, offloading.",
    )

    @model_validator(mode="after")
    def _cross_references(self) -> PlatformConfig:
        """Unique names, and references between sections that point at something real."""
        issues = Issues()
        self._check_unique_names(issues)
        self._check_shared_resources(issues)
        self._check_projects(issues)
        issues.raise_if_any()
        return self

    def _check_unique_names(self, issues: Issues) -> None:
        for section, names in (
            ("accelerators", [a.name for a in self.accelerators]),
            ("images", [i.name for i in self.images]),
        ):
            for i, first in _repeats(names):
                issues.add(
                    (section, i, "name"),
                    f"duplicate name {shown(names[i])} (as {section}[{first}])",
                )
        defaults = [i for i, image in enumerate(self.images) if image.default]
        for i in defaults[1:]:
            issues.add(
                ("images", i, "default"),
                f"only one image may be the default (images[{defaults[0]}] "
                f"{shown(self.images[defaults[0]].name)} already is)",
            )
        for i, image in enumerate(self.images):
            for j, group in enumerate(image.groups):
                if group not in self.projects:
                    issues.add(
                        ("images", i, "groups", j),
                        f"unknown project {shown(group)} (projects: {self._names(self.projects)})",
                    )

    def _check_shared_resources(self, issues: Issues) -> None:
        # models sharing a resource name are told apart by their node selectors only: a model
        # whose selector is contained in another's also matches that model's nodes, and the
        # inventory would count the same devices for both (reported at the less specific one)
        for j, model in enumerate(self.accelerators):
            for i, other in enumerate(self.accelerators):
                mine, theirs = model.node_selector.items(), other.node_selector.items()
                if i == j or model.resource != other.resource:
                    continue
                if mine < theirs or (mine == theirs and i < j):
                    issues.add(
                        ("accelerators", j, "nodeSelector"),
                        f"matches the nodes of accelerators[{i}] ({shown(other.name)}) too, "
                        f"which uses the same resource {shown(model.resource)}: models sharing "
                        f"a resource need nodeSelectors that tell them apart "
                        f"(got {shown(model.node_selector)})",
                    )
                    break

    def _check_projects(self, issues: Issues) -> None:
        catalogue = [a.name for a in self.accelerators]
        sizes = [parse_memory(m) for m in self.resources.memory_choices]
        gids: dict[int, str] = {}
        for name, project in self.projects.items():
            folder = project.storage
            if self.storage.nfs is not None and folder.shared_folder and folder.gid is None:
                issues.add(
                    ("projects", name, "storage", "gid"),
                    "required: the project has a shared folder on storage.nfs, owned by this "
                    "group id (or set sharedFolder: false)",
                )
            if folder.gid is not None:
                if folder.gid in gids:
                    issues.add(
                        ("projects", name, "storage", "gid"),
                        f"gid {folder.gid} is already the gid of project {shown(gids[folder.gid])}",
                    )
                gids.setdefault(folder.gid, name)
            limits = project.limits
            where = ("projects", name, "limits")
            for j, model in enumerate(limits.accelerators or []):
                if model not in catalogue:
                    issues.add(
                        (*where, "accelerators", j),
                        f"unknown accelerator {shown(model)} (catalogue: {self._names(catalogue)})",
                    )
            if limits.max_cpu is not None and limits.max_cpu not in self.resources.cpu_choices:
                issues.add(
                    (*where, "maxCpu"),
                    f"expected one of resources.cpuChoices ({self.resources.cpu_text()}) "
                    f"(got {limits.max_cpu:g})",
                )
            if limits.max_memory is not None and parse_memory(limits.max_memory) not in sizes:
                issues.add(
                    (*where, "maxMemory"),
                    "expected one of resources.memoryChoices "
                    f"({', '.join(self.resources.memory_choices)}) "
                    f"(got {shown(limits.max_memory)})",
                )

    @staticmethod
    def _names(names: Iterable[str]) -> str:
        listed = sorted(names)
        return ", ".join(listed) if listed else "none defined"

    def accelerator(self, name: str) -> Accelerator | None:
        """The catalogue model called ``name``, if any."""
        return next((a for a in self.accelerators if a.name == name), None)

    def image(self, name: str) -> Image | None:
        """The image called ``name``, if any."""
        return next((i for i in self.images if i.name == name), None)

    def default_image(self) -> Image:
        """The image marked ``default``, else the first one."""
        return next((i for i in self.images if i.default), self.images[0])

    @staticmethod
    def _image_line(image: Image, default: Image) -> str:
        notes = ["default"] if image is default else []
        notes += ["CUDA"] if image.gpu else []
        notes += [f"projects: {', '.join(image.groups)}"] if image.groups else []
        return f"{image.name} ({'; '.join(notes)})" if notes else image.name

    def warnings(self) -> list[str]:
        """Valid but risky choices, for ``check-config`` to tell administrators about."""
        found: list[str] = []
        buckets = self.storage.buckets
        if buckets is not None and not buckets.token_audience:
            found.append(
                "storage.buckets.tokenAudience is empty: each user's whole login token reaches "
                "the object store and their rclone sidecar; set an audience (e.g. "
                "`object-store`) that IAM exchanges it for"
            )
        if self.storage.nfs is not None and self.storage.home.uid_base is None:
            found.append(
                "storage.home.uidBase is empty: every user runs as the same id "
                f"({self.storage.home.uid}), so homes and shared folders are protected only by "
                "which folder a pod mounts"
            )
        juicefs = self.jobs.offload.juicefs
        shared_meta = juicefs is not None and "{project}" not in juicefs.metadata_url
        if self.jobs.offload.enabled and shared_meta:
            found.append(
                "jobs.offload.juicefs.metadataUrl has no {project}: every project's offloaded "
                "jobs mount the same file system with the same password, so a job can reach "
                "other projects' folders; use one metadata database per project"
            )
        return found

    def summary(self) -> str:
        """A few lines for administrators: what this configuration offers to users."""
        kinds: Counter[str] = Counter(a.kind for a in self.accelerators)
        by_kind = ", ".join(f"{kinds[k]} {k}" for k in ACCELERATOR_KINDS if kinds[k])
        default = self.default_image()
        images = ", ".join(self._image_line(i, default) for i in self.images)
        res = self.resources
        default_cpu = res.cpu_choices[0] if res.default_cpu is None else res.default_cpu
        default_memory = res.default_memory or res.memory_choices[0]
        return "\n".join(
            [
                f"accelerators: {len(self.accelerators)}" + (f" ({by_kind})" if by_kind else ""),
                f"images: {len(self.images)} ({images})",
                f"cpu choices: {res.cpu_text()} (default {default_cpu:g})",
                f"memory choices: {', '.join(res.memory_choices)} (default {default_memory})",
                f"projects: {len(self.projects)}"
                + (f" ({', '.join(sorted(self.projects))})" if self.projects else ""),
                f"storage: {self.storage.summary()}",
                f"jobs: {self.jobs.summary()}",
            ]
        )
