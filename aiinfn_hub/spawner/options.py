"""Validation of spawn options: one validator for the form and for the REST API.

Everything a user submits is checked against an allow-list built from the platform config, the
user's projects and the live inventory. A bad value raises ``OptionsError`` with a message that
says what was wrong and what is allowed; nothing is created in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Accelerator, Image, PlatformConfig
from ..inventory import ModelAvailability
from . import policy
from .policy import UserContext

FIELDS = ("image", "cpu", "memory", "accelerator", "count", "server", "scratch")
NO_ACCELERATOR = "none"


class OptionsError(ValueError):
    """A spawn option is not acceptable; the message is meant for the user."""


@dataclass(frozen=True)
class ServerChoice:
    """Validated options of one server."""

    image: Image
    cpu: float
    memory: str
    accelerator: Accelerator | None = None
    count: int = 0
    server: str | None = None
    scratch: str | None = None  # size of the scratch disk, when the platform offers one

    def to_user_options(self) -> dict[str, Any]:
        """What is stored as the server's ``user_options`` (and pre-fills the next form)."""
        options: dict[str, Any] = {
            "image": self.image.name,
            "cpu": self.cpu,
            "memory": self.memory,
            "accelerator": self.accelerator.name if self.accelerator else NO_ACCELERATOR,
            "count": self.count,
            "server": self.server or "",
        }
        if self.scratch is not None:
            options["scratch"] = self.scratch
        return options


def form_to_options(form: Mapping[str, list[str]]) -> dict[str, Any]:
    """Form posts arrive as lists of strings: one value per field, or an error.

    ``_xsrf`` is the hub page's own anti-forgery field (JupyterHub passes the whole form on).
    """
    out: dict[str, Any] = {}
    for key, values in form.items():
        if key == "_xsrf":
            continue
        if len(values) != 1:
            raise OptionsError(f"field {key!r} was sent {len(values)} times; send it once")
        out[key] = values[0]
    return out


def _text(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OptionsError(f"{key} must be a string (got {type(value).__name__})")
    return value


def _number(options: Mapping[str, Any], key: str) -> float | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise OptionsError(f"{key} must be a number (got a boolean)")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise OptionsError(f"{key} must be a number (got {value!r})") from None
    raise OptionsError(f"{key} must be a number (got {type(value).__name__})")


def validate_options(
    options: Mapping[str, Any],
    config: PlatformConfig,
    user: UserContext,
    availability: list[ModelAvailability],
) -> ServerChoice:
    """Check every field against what this user may use and what is free now."""
    if not isinstance(options, Mapping):
        raise OptionsError("options must be an object with the fields " + ", ".join(FIELDS))
    extra = sorted(set(options) - set(FIELDS))
    if extra:
        raise OptionsError(
            f"unknown option(s) {', '.join(map(repr, extra))}; allowed: {', '.join(FIELDS)}"
        )

    images = policy.allowed_images(config, user)
    image_name = _text(options, "image")
    if image_name is None:
        default = config.default_image()
        image = default if default in images else (images[0] if images else None)
        if image is None:
            raise OptionsError("no image is available to you; ask an administrator")
    else:
        found = next((i for i in images if i.name == image_name), None)
        if found is None:
            raise OptionsError(
                f"image {image_name!r} is not available to you; choose one of: "
                f"{', '.join(i.name for i in images) or 'none'}"
            )
        image = found

    cpus = policy.allowed_cpus(config, user)
    cpu = _number(options, "cpu")
    if cpu is None:
        cpu = policy.default_cpu(config, user)
    elif cpu not in cpus:
        raise OptionsError(
            f"cpu {cpu:g} is not allowed; choose one of: {', '.join(f'{c:g}' for c in cpus)}"
        )

    memories = policy.allowed_memory(config, user)
    memory = _text(options, "memory")
    if memory is None:
        memory = policy.default_memory(config, user)
    else:
        if memory not in memories:
            raise OptionsError(
                f"memory {memory!r} is not allowed; choose one of: {', '.join(memories)}"
            )

    scratch = _scratch(options, config)

    accelerator_name = _text(options, "accelerator")
    count_value = _number(options, "count")
    server = _text(options, "server")
    if accelerator_name in (None, NO_ACCELERATOR):
        if server is not None:
            raise OptionsError("a server can only be pinned together with an accelerator")
        if count_value not in (None, 0):
            raise OptionsError("count needs an accelerator; choose one or leave count empty")
        return ServerChoice(image, cpu, memory, scratch=scratch)

    allowed = policy.allowed_accelerators(config, user)
    model = next((a for a in allowed if a.name == accelerator_name), None)
    if model is None:
        raise OptionsError(
            f"accelerator {accelerator_name!r} is not available to you; choose "
            f"one of: {', '.join(a.name for a in allowed) or 'none'}"
        )
    count_float = 1.0 if count_value is None else count_value
    if count_float != int(count_float):
        raise OptionsError(f"count must be a whole number (got {count_float:g})")
    count = int(count_float)
    cap = policy.max_units(config, user, model)
    if count < 1 or count > cap:
        raise OptionsError(f"count must be between 1 and {cap} for {model.name}")
    live = next((m for m in availability if m.name == model.name), None)
    servers = live.servers if live else ()
    if server is not None:
        pinned = next((s for s in servers if s.node == server), None)
        if pinned is None:
            raise OptionsError(
                f"server {server!r} does not offer {model.name} to you; choose "
                f"one of: {', '.join(s.node for s in servers) or 'none'}"
            )
        if pinned.free < count:
            raise OptionsError(
                f"server {server} has {pinned.free} {model.name} free; ask for "
                f"fewer or choose another server"
            )
    elif not any(s.free >= count for s in servers):
        most = max((s.free for s in servers), default=0)
        raise OptionsError(
            f"no server has {count} {model.name} free right now (at most {most} "
            "on one server); ask for fewer or try again later"
        )
    if not image.gpu and model.kind in ("gpu", "mig"):
        raise OptionsError(
            f"image {image.name!r} has no CUDA; choose a GPU image to use {model.name}"
        )
    return ServerChoice(image, cpu, memory, model, count, server, scratch)


def _scratch(options: Mapping[str, Any], config: PlatformConfig) -> str | None:
    """The scratch size: one of ``storage.scratch.sizeChoices`` (default when not given)."""
    offered = config.storage.scratch
    size = _text(options, "scratch")
    if offered is None:
        if size is not None:
            raise OptionsError("this platform offers no scratch disk; leave scratch empty")
        return None
    if size is None:
        return offered.default()
    if size not in offered.size_choices:
        raise OptionsError(
            f"scratch {size!r} is not offered; choose one of: {', '.join(offered.size_choices)}"
        )
    return size
