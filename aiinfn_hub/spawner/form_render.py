"""The spawn form's HTML: what a user may choose (per configuration and groups, computed once)
and the live counts of every server (per render), through ``templates/spawn_form.html``.

A form lists every server of every model: with 500 nodes that is a thousand lines of counts and
options, rendered at each visit to the spawn page. Those lines are joined here in plain Python
(escaped as the template would escape them) instead of in template loops, and what depends
only on the configuration and the user's groups is kept until the configuration changes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..config import Accelerator, Image, PlatformConfig
from ..inventory.availability import ModelAvailability, ServerAvailability
from ..platform import entitlements
from ..platform.entitlements import UserContext
from ..platform.vocabulary import NO_ACCELERATOR
from .form_view import (
    KIND_HINTS,
    KIND_NAMES,
    default_image_for,
    images_for,
    memory_label,
    needs_cuda,
)
from .options import OptionsError

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("aiinfn_hub", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)
# the choices of the last few (configuration, groups) pairs; a new configuration replaces them
_CHOICES_KEPT = 64
_choices: dict[tuple[int, frozenset[str]], UserChoices] = {}


@dataclass(frozen=True)
class UserChoices:
    """What a user may choose under one configuration: a function of it and the groups only."""

    config: PlatformConfig  # kept so its id is not reused while this is cached
    images: list[Image]
    catalogue: dict[str, Accelerator]
    cpus: list[float]
    default_cpu: float
    memories: list[str]
    memory_labels: list[tuple[str, str]]
    default_memory: str
    caps: dict[str, int]
    needs_cuda: dict[str, bool]
    default_image: str
    default_cuda_image: str


def user_choices(config: PlatformConfig, user: UserContext) -> UserChoices:
    """The choices of ``user`` under ``config``, computed once per configuration and groups.

    The configuration provider gives a new object for each version of the file, so a changed
    configuration is a new key; the objects are never changed in place.
    """
    key = (id(config), user.groups)
    found = _choices.get(key)
    if found is not None and found.config is config:
        return found
    images = entitlements.allowed_images(config, user)
    catalogue = {a.name: a for a in entitlements.allowed_accelerators(config, user)}
    memories = entitlements.allowed_memory(config, user)
    default_gpu = next((i for i in images if i.gpu), None)
    found = UserChoices(
        config=config,
        images=images,
        catalogue=catalogue,
        cpus=entitlements.allowed_cpus(config, user),
        default_cpu=entitlements.default_cpu(config, user),
        memories=memories,
        memory_labels=[(m, memory_label(m)) for m in memories],
        default_memory=entitlements.default_memory(config, user),
        caps={name: entitlements.max_units(config, user, a) for name, a in catalogue.items()},
        needs_cuda={name: needs_cuda(a) for name, a in catalogue.items()},
        default_image=(default_image_for(config, images, None) or images[0]).name,
        default_cuda_image=(default_gpu or images[0]).name,
    )
    if len(_choices) >= _CHOICES_KEPT or any(c.config is not config for c in _choices.values()):
        _choices.clear()
    _choices[key] = found
    return found


def render_form(
    config: PlatformConfig,
    user: UserContext,
    models: list[ModelAvailability],
    previous: dict[str, Any],
    error: OptionsError | None = None,
) -> str:
    """The spawn form's HTML, pre-filled with ``previous`` (the last choice that started) where
    it is still offered, and showing ``error`` next to its field."""
    choices = user_choices(config, user)
    images, catalogue, caps = choices.images, choices.catalogue, choices.caps
    # a model is offered only with an image that can use it: a choice offered can start
    offered = [m for m in models if m.name in catalogue and images_for(images, catalogue[m.name])]
    free_now = {m.name for m in offered if m.for_notebooks > 0}
    accelerator = previous.get("accelerator")
    if accelerator not in free_now:
        accelerator = NO_ACCELERATOR
    model = catalogue.get(str(accelerator))
    image = previous.get("image")
    if image not in {i.name for i in images_for(images, model)}:
        image = (default_image_for(config, images, model) or images[0]).name
    cpu = _as_float(previous.get("cpu"))
    memory = previous.get("memory")
    count = int(_as_float(previous.get("count")) or 1)
    live = next((m for m in offered if m.name == accelerator), None)
    server = previous.get("server") or ""
    if live is None or server not in {s.node for s in live.servers}:
        server = ""
    scratch = config.storage.scratch
    size = previous.get("scratch")
    selected = {
        "image": image,
        "cpu": cpu if cpu in choices.cpus else choices.default_cpu,
        "memory": memory if memory in choices.memories else choices.default_memory,
        "accelerator": accelerator,
        "count": count if model is not None and 1 <= count <= caps[model.name] else 1,
        "server": server,
        "scratch": size
        if scratch and size in scratch.size_choices
        else (scratch.default() if scratch else None),
    }
    kinds: dict[str, list[ModelAvailability]] = {}
    for m in offered:
        kinds.setdefault(m.kind, []).append(m)
    return _TEMPLATES.get_template("spawn_form.html").render(
        images=images,
        default_image=choices.default_image,
        default_cuda_image=choices.default_cuda_image,
        cpus=choices.cpus,
        memories=choices.memory_labels,
        kinds=kinds,
        kind_hints=KIND_HINTS,
        kind_names=KIND_NAMES,
        needs_cuda=choices.needs_cuda,
        caps=caps,
        max_count=max(caps.values(), default=1) or 1,
        server_lists={m.name: server_list(m.servers) for m in offered},
        most={m.name: max((s.for_notebooks for s in m.servers), default=0) for m in offered},
        server_options=server_options(offered, server),
        scratch=scratch,
        size_label=memory_label,
        selected=selected,
        error=error,
    )


def server_list(servers: Iterable[ServerAvailability]) -> Markup:
    """Each server's free / total units and those batch jobs hold, escaped for HTML: "server-1
    (2/4), server-2 (0/2, 2 from batch jobs)"."""
    return Markup(
        ", ".join(
            f"{_escaped(s.node)} ({s.free}/{s.total}, {s.batch} from batch jobs)"
            if s.batch
            else f"{_escaped(s.node)} ({s.free}/{s.total})"
            for s in servers
        )
    )


def server_options(offered: list[ModelAvailability], selected: str) -> Markup:
    """The "pin a server" options after the first one: each server carrying an offered model,
    by name, with the models it carries (in the form's order) for the form's script."""
    carries: dict[str, list[str]] = {}
    for m in offered:
        for s in m.servers:
            names = carries.setdefault(s.node, [])
            if not names or names[-1] != m.name:
                names.append(m.name)
    lines = []
    for node in sorted(carries):
        name = _escaped(node)
        models = escape(" ".join(carries[node]))
        chosen = "selected" if node == selected else ""
        lines.append(
            f'\n            <option value="{name}" data-models="{models}" {chosen}>{name}</option>'
        )
    return Markup("".join(lines))


@functools.lru_cache(maxsize=8192)
def _escaped(text: str) -> str:
    """A node name escaped for HTML, once: the same names come back at every render."""
    return str(escape(text))


def _as_float(value: Any) -> float | None:
    """A stored number (float, int or the string a form posted), None when it is none."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
