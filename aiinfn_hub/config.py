"""The platform configuration: one strict YAML document, validated by ``PlatformConfig``.

The same mapping sits under the hub's Helm values, so keys are camelCase; Python code uses the
snake_case attribute names. Unknown keys are errors at every level, and every error names the
path of the bad key as written in the YAML (``accelerators[2].resource: expected ...``).

Adding a section later (storage, jobs, ...) is one model class and one field on
``PlatformConfig``.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

_SLUG = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
# extended resources may not live in the kubernetes.io namespaces, nor shadow cpu/memory
_RESERVED_RESOURCE_DOMAINS = ("kubernetes.io", "k8s.io")


_ALIASES = {"memory_gib": "memoryGiB"}


class PlatformConfigError(Exception):
    """The configuration is invalid; ``lines`` are ``path: what was expected`` messages."""

    def __init__(self, lines: list[str], source: str = "") -> None:
        self.lines = lines
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "invalid platform configuration:\n  " + "\n  ".join(lines))


# -- value checks --------------------------------------------------------------------------
def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"expected a slug: lowercase letters, digits and '-', at most 63 characters, "
            f"starting and ending with a letter or digit (got {value!r})"
        )
    return value


def _extended_resource(value: str) -> str:
    domain, _, name = value.partition("/")
    if (
        not name
        or not _DNS_SUBDOMAIN.match(domain)
        or not _LABEL_NAME.match(name)
        or any(domain == d or domain.endswith("." + d) for d in _RESERVED_RESOURCE_DOMAINS)
    ):
        raise ValueError(
            f'expected an extended resource name like "nvidia.com/gpu" (got {value!r})'
        )
    return value


def check_label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or not (
        _LABEL_NAME.match(name)
    ):
        raise ValueError(
            f"expected a Kubernetes label key like 'nvidia.com/gpu.product' (got {key!r})"
        )
    return key


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, label in value.items():
        check_label_key(key)
        if not _LABEL_VALUE.match(label):
            raise ValueError(
                f"expected a Kubernetes label value for {key!r}: at most 63 "
                f"letters, digits, '-', '_' or '.' (got {label!r})"
            )
    return value


def parse_memory(value: str | int) -> int:
    """A Kubernetes memory quantity (``8Gi``, ``500M``, ``1073741824``) in bytes."""
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(f'expected a memory size like "8Gi" or "512Mi" (got {value!r})')
    number, suffix = Fraction(m.group(1)), m.group(2)
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return int(number * factor)


def _memory(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f'expected a memory size like "8Gi" (got {value!r})')
    if parse_memory(value) <= 0:
        raise ValueError(f"expected a positive memory size (got {value!r})")
    return str(value)


def _image_reference(value: str) -> str:
    if not value or any(c.isspace() for c in value) or value != value.strip():
        raise ValueError(
            f"expected an OCI image reference like 'quay.io/org/image:tag' (got {value!r})"
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
ExtendedResource = Annotated[str, AfterValidator(_extended_resource)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
MemorySize = Annotated[str, BeforeValidator(_memory)]
ImageReference = Annotated[str, AfterValidator(_image_reference)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# -- sections ------------------------------------------------------------------------------
class Toleration(_Model):
    """A Kubernetes toleration added to pods that use an accelerator."""

    key: str = Field("", description="Taint key to tolerate, e.g. `nvidia.com/gpu`.")
    operator: Literal["Exists", "Equal"] = Field(
        "Equal", description="`Equal` matches `value`; `Exists` matches any value."
    )
    value: str = Field("", description="Taint value (empty with `Exists`).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""] = Field(
        "", description="Taint effect to tolerate; empty tolerates every effect."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="For NoExecute: how long the pod stays after the taint."
    )

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when operator is Exists")
        if not self.key and self.operator != "Exists":
            raise ValueError("an empty key needs operator Exists (it tolerates every taint)")
        return self


class Accelerator(_Model):
    """One model of the accelerator catalogue (a GPU, a MIG slice or an FPGA)."""

    name: Slug = Field(description="Short unique id used in forms and APIs, e.g. `a100`.")
    description: str = Field(description="What users see, e.g. `NVIDIA A100 80 GB`.")
    kind: Literal["gpu", "mig", "fpga"] = Field(description="`gpu`, `mig` (slice) or `fpga`.")
    resource: ExtendedResource = Field(
        description="Extended resource requested in limits, e.g. `nvidia.com/gpu`, "
        "`nvidia.com/mig-1g.10gb`, `amd.com/xilinx_u250_gen3x16_xdma_shell_4_1-0`."
    )
    node_selector: Labels = Field(
        default_factory=dict,
        description="Labels of the nodes carrying this model, e.g. "
        "`{nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}`; added to the pod's nodeSelector. "
        "Needed whenever several models share one resource name.",
    )
    memory_gib: float = Field(
        gt=0, alias="memoryGiB", description="Device memory in GiB, e.g. `80`."
    )
    preference_weight: int = Field(
        0, description="Ordering of models in the form (higher first), e.g. `10`."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Tolerations pods using this model get."
    )
    max_per_server: int = Field(
        1, ge=1, description="Most units of this model one user server may request (default 1)."
    )


class Image(_Model):
    """A container image users can pick for their server."""

    name: Slug = Field(description="Short unique id, e.g. `cuda-ml`.")
    image: ImageReference = Field(description="OCI reference, e.g. `harbor.example/ai/ml:2.3`.")
    description: str = Field(description="What users see, e.g. `PyTorch + TensorFlow, CUDA 12`.")
    groups: list[str] = Field(
        default_factory=list,
        description="Projects allowed to use it; empty means every user, e.g. `[qml]`.",
    )
    gpu: bool = Field(False, description="Built with CUDA: offered together with accelerators.")
    default: bool = Field(False, description="Pre-selected image (at most one; else the first).")


class Resources(_Model):
    """The CPU and memory choices offered on the spawn form."""

    cpu_choices: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [1.0, 2.0, 4.0, 8.0],
        min_length=1,
        description="CPU cores offered, e.g. `[1, 2, 4, 8]`.",
    )
    memory_choices: list[MemorySize] = Field(
        default_factory=lambda: ["4Gi", "8Gi", "16Gi", "32Gi"],
        min_length=1,
        description="Memory sizes offered as Kubernetes quantities, e.g. `[4Gi, 8Gi]`.",
    )
    default_cpu: float | None = Field(None, description="Pre-selected CPU (default: the first).")
    default_memory: MemorySize | None = Field(
        None, description="Pre-selected memory (default: the first)."
    )
    guarantee_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Requests are this fraction of the chosen limits (1.0 = guaranteed QoS; "
        "lower values overcommit nodes), e.g. `0.5`.",
    )

    @model_validator(mode="after")
    def _defaults_among_choices(self) -> Resources:
        if self.default_cpu is not None and self.default_cpu not in self.cpu_choices:
            raise ValueError(
                f"defaultCpu {self.default_cpu} must be one of cpuChoices {self.cpu_choices}"
            )
        memory = [parse_memory(m) for m in self.memory_choices]
        if self.default_memory is not None and parse_memory(self.default_memory) not in memory:
            raise ValueError(
                f"defaultMemory {self.default_memory} must be one of memoryChoices "
                f"{self.memory_choices}"
            )
        return self


class ProjectLimits(_Model):
    """What a project's members may use; absent values mean the platform's choices."""

    max_gpus: int | None = Field(
        None, ge=0, description="Most accelerator units per user server, e.g. `2`."
    )
    max_cpu: float | None = Field(None, gt=0, description="Largest CPU choice unlocked, e.g. `16`.")
    max_memory: MemorySize | None = Field(
        None, description="Largest memory choice unlocked, e.g. `64Gi`."
    )
    accelerators: list[str] | None = Field(
        None, description="Accelerator names members may use (default: all), e.g. `[t4, a30]`."
    )


class Project(_Model):
    """A research project = a JupyterHub (and IAM) group."""

    display_name: str = Field(description="Shown in forms and the admin panel, e.g. `CMS`.")
    description: str = Field("", description="A sentence about the project.")
    limits: ProjectLimits = Field(
        default_factory=ProjectLimits, description="What members may use (see ProjectLimits)."
    )


class PlatformConfig(_Model):
    """The whole platform configuration (the `aiinfn` section of the hub's Helm values)."""

    accelerators: list[Accelerator] = Field(
        default_factory=list, description="The accelerator catalogue."
    )
    images: list[Image] = Field(
        default_factory=list, description="Images users may pick (at least one to spawn)."
    )
    resources: Resources = Field(
        default_factory=Resources, description="CPU and memory choices and defaults."
    )
    projects: dict[Annotated[str, AfterValidator(_slug)], Project] = Field(
        default_factory=dict, description="Projects by group name, e.g. `{cms: {...}}`."
    )

    @model_validator(mode="after")
    def _cross_references(self) -> PlatformConfig:
        errors: list[str] = []
        for section, names in (
            ("accelerators", [a.name for a in self.accelerators]),
            ("images", [i.name for i in self.images]),
        ):
            for name, count in Counter(names).items():
                if count > 1:
                    errors.append(f"{section}: name {name!r} is used {count} times")
        if sum(1 for i in self.images if i.default) > 1:
            errors.append("images: at most one image may be the default")
        known = {a.name for a in self.accelerators}
        for i, image in enumerate(self.images):
            for group in image.groups:
                if group not in self.projects:
                    errors.append(
                        f"images[{i}].groups: unknown project {group!r} "
                        f"(known: {sorted(self.projects)})"
                    )
        for name, project in self.projects.items():
            for acc in project.limits.accelerators or []:
                if acc not in known:
                    errors.append(
                        f"projects.{name}.limits.accelerators: unknown accelerator "
                        f"{acc!r} (known: {sorted(known)})"
                    )
        if errors:
            raise ValueError("\n".join(errors))
        return self

    def accelerator(self, name: str) -> Accelerator | None:
        return next((a for a in self.accelerators if a.name == name), None)

    def default_image(self) -> Image | None:
        return next((i for i in self.images if i.default), self.images[0] if self.images else None)

    def summary(self) -> str:
        """A few lines for administrators: what the configuration offers."""
        kinds = Counter(a.kind for a in self.accelerators)
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
        cpus = ", ".join(f"{c:g}" for c in self.resources.cpu_choices)
        return "\n".join(
            [
                f"accelerators: {len(self.accelerators)} ({by_kind})",
                f"images: {len(self.images)} ({', '.join(i.name for i in self.images) or 'none'})",
                f"cpu choices: {cpus}; memory choices: {', '.join(self.resources.memory_choices)}",
                f"projects: {len(self.projects)} ({', '.join(sorted(self.projects)) or 'none'})",
            ]
        )


# -- loading -------------------------------------------------------------------------------
def _camel_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if "." in part or "/" in part else _ALIASES.get(part, to_camel(part))
            out += f".{text}" if out else text
    return out


def format_errors(exc: ValidationError) -> list[str]:
    """``path: message`` lines, paths as written in the YAML."""
    lines = []
    for error in exc.errors():
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-after"))
        )
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and the documented keys)"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "literal_error":
            message = "expected " + message.removeprefix("Input should be ")
        path = _camel_path(loc)
        for part in message.split("\n"):
            lines.append(f"{path}: {part}" if path else part)
    return lines


def load_platform_config(source: str | Path) -> PlatformConfig:
    """Load and validate a configuration from a file path or from YAML text."""
    label = ""
    if isinstance(source, Path) or ("\n" not in source and Path(source).is_file()):
        label = str(source)
        text = Path(source).read_text(encoding="utf-8")
    else:
        text = str(source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlatformConfigError([f"{where}not valid YAML: {problem}"], label) from exc
    if data is None:
        raise PlatformConfigError(
            [
                "the document is empty: expected a mapping with "
                "accelerators, images, resources and projects"
            ],
            label,
        )
    if not isinstance(data, dict):
        raise PlatformConfigError(
            [f"expected a mapping at the top level (got {type(data).__name__})"], label
        )
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as exc:
        raise PlatformConfigError(format_errors(exc), label) from exc
