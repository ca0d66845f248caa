"""Who may use what: images, CPU, memory and accelerators allowed to a user, from their projects.

One implementation for every feature that asks (the spawn form and its validator, Bunshin's
jobs, later accounting): same question, same answer. Policy as data: a user's projects are
their JupyterHub groups that ``PlatformConfig.projects`` lists. A user in several projects gets
the most generous allowance among them.

- Images: those without ``groups``, plus those naming one of the user's projects.
- CPU and memory: every configured choice up to the largest ``maxCpu``/``maxMemory`` of the
  user's projects (a project without a maximum unlocks every choice). A user in no project gets
  the choices up to the platform default.
- Accelerators: the union of the projects' ``accelerators`` lists (absent: the whole catalogue).
  A user in no project gets none: GPUs are allocated to research projects.
- Units per server: the smaller of the model's ``maxPerServer`` and the largest ``maxGpus``.
- A GPU or MIG model needs an image with CUDA (``gpu: true``).

The ``check_*`` functions answer a submitted value with the allowed one or an
:class:`EntitlementError` whose message says what is allowed instead; ``fit_*`` answer a
minimum (what a batch job asks for) with the smallest allowed choice that meets it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import Accelerator, Image, PlatformConfig, Project, parse_memory


@dataclass(frozen=True)
class UserContext:
    """The facts about a user that policy needs."""

    name: str
    groups: frozenset[str]

    def projects(self, config: PlatformConfig) -> list[tuple[str, Project]]:
        return [(g, config.projects[g]) for g in sorted(self.groups) if g in config.projects]


def allowed_images(config: PlatformConfig, user: UserContext) -> list[Image]:
    return [i for i in config.images if not i.groups or set(i.groups) & user.groups]


def _cap(values: Iterable[float | None]) -> float | None:
    """The most generous of the projects' caps; None means uncapped."""
    caps = list(values)
    if any(c is None for c in caps):
        return None
    return max(c for c in caps if c is not None)


def allowed_cpus(config: PlatformConfig, user: UserContext) -> list[float]:
    choices = config.resources.cpu_choices
    projects = user.projects(config)
    if projects:
        cap = _cap(p.limits.max_cpu for _, p in projects)
    else:
        cap = config.resources.default_cpu or choices[0]
    # the smallest choice is always allowed, whatever a project's cap says
    return [c for c in choices if cap is None or c <= cap] or [min(choices)]


def allowed_memory(config: PlatformConfig, user: UserContext) -> list[str]:
    choices = config.resources.memory_choices
    projects = user.projects(config)
    if projects:
        cap = _cap(
            parse_memory(p.limits.max_memory) if p.limits.max_memory else None for _, p in projects
        )
    else:
        cap = parse_memory(config.resources.default_memory or choices[0])
    return [m for m in choices if cap is None or parse_memory(m) <= cap] or [
        min(choices, key=parse_memory)
    ]


def allowed_accelerators(config: PlatformConfig, user: UserContext) -> list[Accelerator]:
    projects = user.projects(config)
    if not projects:
        return []
    names: set[str] = set()
    for _, project in projects:
        if project.limits.accelerators is None:
            return list(config.accelerators)
        names.update(project.limits.accelerators)
    return [a for a in config.accelerators if a.name in names]


def max_units(config: PlatformConfig, user: UserContext, model: Accelerator) -> int:
    """Most units of ``model`` one server of this user may take (0: none)."""
    projects = user.projects(config)
    if not projects or model not in allowed_accelerators(config, user):
        return 0
    cap = _cap(p.limits.max_gpus for _, p in projects)
    return model.max_per_server if cap is None else min(model.max_per_server, int(cap))


def default_cpu(config: PlatformConfig, user: UserContext) -> float:
    allowed = allowed_cpus(config, user)
    wanted = config.resources.default_cpu
    return wanted if wanted in allowed else allowed[0]


def default_memory(config: PlatformConfig, user: UserContext) -> str:
    allowed = allowed_memory(config, user)
    wanted = config.resources.default_memory
    if wanted is not None:
        for choice in allowed:
            if parse_memory(choice) == parse_memory(wanted):
                return choice
    return allowed[0]


# -- checks of submitted values ---------------------------------------------------------------


class EntitlementError(ValueError):
    """A value the user may not have; the message is for the user and names what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_image(config: PlatformConfig, user: UserContext, name: str | None) -> Image:
    """The image called ``name`` (the default image when None), if the user may run it."""
    images = allowed_images(config, user)
    if name is None:
        default = config.default_image()
        image = default if default in images else (images[0] if images else None)
        if image is None:
            raise EntitlementError("image", "no image is available to you; ask an administrator")
        return image
    found = next((i for i in images if i.name == name), None)
    if found is None:
        raise EntitlementError(
            "image",
            f"image {name!r} is not available to you; choose one of: "
            f"{', '.join(i.name for i in images) or 'none'}",
        )
    return found


def image_by_reference(config: PlatformConfig, user: UserContext, reference: str) -> Image:
    """The catalogue image a running container uses (its OCI reference), if still the user's."""
    images = allowed_images(config, user)
    found = next((i for i in images if i.image == reference), None)
    if found is None:
        raise EntitlementError(
            "image",
            f"image {reference!r} is no longer offered to you; restart your server with one "
            f"of: {', '.join(i.name for i in images) or 'none'}",
        )
    return found


def check_cpu(config: PlatformConfig, user: UserContext, cpu: float | None) -> float:
    """One of the listed CPU choices the user may have (the default when None)."""
    if cpu is None:
        return default_cpu(config, user)
    cpus = allowed_cpus(config, user)
    if cpu not in cpus:
        raise EntitlementError(
            "cpu",
            f"cpu {cpu:g} is not allowed; choose one of: {', '.join(f'{c:g}' for c in cpus)}",
        )
    return cpu


def check_memory(config: PlatformConfig, user: UserContext, memory: str | None) -> str:
    """The listed memory choice equal to ``memory`` (``8Gi`` and ``8192Mi`` are one choice)."""
    if memory is None:
        return default_memory(config, user)
    choices = allowed_memory(config, user)
    try:
        asked = parse_memory(memory)
    except ValueError:
        asked = None
    found = next((m for m in choices if m == memory or parse_memory(m) == asked), None)
    if found is None:
        raise EntitlementError(
            "memory", f"memory {memory!r} is not allowed; choose one of: {', '.join(choices)}"
        )
    return found


def fit_cpu(config: PlatformConfig, user: UserContext, cpu: float | None) -> float:
    """The smallest CPU choice of the user's giving at least ``cpu`` cores.

    Jobs ask for a minimum (a workflow's ``threads``), servers pick a choice on the form: both
    end on one of the same listed choices, within the same caps.
    """
    if cpu is None:
        return default_cpu(config, user)
    fit = min((c for c in allowed_cpus(config, user) if c >= cpu), default=None)
    return check_cpu(config, user, cpu if fit is None else fit)


def fit_memory(config: PlatformConfig, user: UserContext, memory: str | None) -> str:
    """The smallest memory choice of the user's giving at least ``memory`` (see :func:`fit_cpu`)."""
    if memory is None:
        return default_memory(config, user)
    try:
        asked = parse_memory(memory)
    except ValueError:
        return check_memory(config, user, memory)  # refused, with the choices
    fits = [m for m in allowed_memory(config, user) if parse_memory(m) >= asked]
    return check_memory(config, user, min(fits, key=parse_memory) if fits else memory)


def check_accelerator(
    config: PlatformConfig, user: UserContext, name: str, count: int
) -> Accelerator:
    """The model called ``name``, if the user may have ``count`` units of it on one server."""
    allowed = allowed_accelerators(config, user)
    model = next((a for a in allowed if a.name == name), None)
    if model is None:
        raise EntitlementError(
            "accelerator",
            f"accelerator {name!r} is not available to you; choose "
            f"one of: {', '.join(a.name for a in allowed) or 'none'}",
        )
    cap = max_units(config, user, model)
    if count < 1 or count > cap:
        raise EntitlementError("count", f"count must be between 1 and {cap} for {model.name}")
    return model


def check_image_runs_on(image: Image, model: Accelerator | None) -> None:
    """GPU and MIG models need an image built with CUDA."""
    if model is not None and not image.gpu and model.kind in ("gpu", "mig"):
        raise EntitlementError(
            "image", f"image {image.name!r} has no CUDA; choose a GPU image to use {model.name}"
        )
