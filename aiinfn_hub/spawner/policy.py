"""Who may use what: images, CPU, memory and accelerators allowed to a user, from their projects.

Policy as data: a user's projects are their JupyterHub groups that ``PlatformConfig.projects``
lists. A user in several projects gets the most generous allowance among them.

- Images: those without ``groups``, plus those naming one of the user's projects.
- CPU and memory: every configured choice up to the largest ``maxCpu``/``maxMemory`` of the
  user's projects (a project without a maximum unlocks every choice). A user in no project gets
  the choices up to the platform default.
- Accelerators: the union of the projects' ``accelerators`` lists (absent: the whole catalogue).
  A user in no project gets none: GPUs are allocated to research projects.
- Units per server: the smaller of the model's ``maxPerServer`` and the largest ``maxGpus``.
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
