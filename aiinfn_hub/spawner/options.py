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
from ..inventory.availability import ModelAvailability
from ..platform import entitlements
from ..platform.entitlements import EntitlementError, UserContext
from ..platform.vocabulary import NO_ACCELERATOR
from .form_view import TIMES, memory_label, short_model_name

FIELDS = ("image", "cpu", "memory", "accelerator", "count", "server", "scratch")
# derived from the validated choice and stored with it (the admin panel shows it): never input
DERIVED = ("profile",)


class OptionsError(ValueError):
    """A spawn option is not acceptable.

    The message names values as the REST API takes them (``a100-1g-10gb``); ``shown`` says the
    same for a person on the form, with the catalogue's descriptions, and ``field`` is the form
    field at fault ("" when no single field is).
    """

    def __init__(self, message: str, field: str = "", shown: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.shown = shown or message


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
            raise OptionsError(
                f"field {key!r} was sent {len(values)} times; send it once",
                key if key in FIELDS else "",
            )
        out[key] = values[0]
    return out


def _text(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OptionsError(f"{key} must be a string (got {type(value).__name__})", key)
    return value


def _number(options: Mapping[str, Any], key: str) -> float | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise OptionsError(f"{key} must be a number (got a boolean)", key)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise OptionsError(f"{key} must be a number (got {value!r})", key) from None
    raise OptionsError(f"{key} must be a number (got {type(value).__name__})", key)


def validate_options(
    options: Mapping[str, Any],
    config: PlatformConfig,
    user: UserContext,
    availability: list[ModelAvailability],
) -> ServerChoice:
    """Check every field against what this user may use and what is free now."""
    if not isinstance(options, Mapping):
        raise OptionsError("options must be an object with the fields " + ", ".join(FIELDS))
    extra = sorted(set(options) - set(FIELDS) - set(DERIVED))
    if extra:
        raise OptionsError(
            f"unknown option(s) {', '.join(map(repr, extra))}; allowed: {', '.join(FIELDS)}"
        )
    try:
        image = entitlements.check_image(config, user, _text(options, "image"))
        cpu = entitlements.check_cpu(config, user, _number(options, "cpu"))
        memory = entitlements.check_memory(config, user, _text(options, "memory"))
        scratch = _scratch(options, config)
        model, count, server = _accelerator(options, config, user, availability)
        entitlements.check_image_runs_on(image, model)
    except EntitlementError as exc:
        raise OptionsError(
            str(exc), exc.field, _shown(exc.field, options, config, user, str(exc))
        ) from None
    return ServerChoice(image, cpu, memory, model, count, server, scratch)


def _shown(
    field: str,
    options: Mapping[str, Any],
    config: PlatformConfig,
    user: UserContext,
    message: str,
) -> str:
    """The refusal of ``field`` in the words of the form (descriptions, "8 GB")."""
    model = next((a for a in config.accelerators if a.name == options.get("accelerator")), None)
    image = next((i for i in config.images if i.name == options.get("image")), None)
    if field == "image" and image is not None and model is not None and "CUDA" in message:
        return (
            f"The image “{image.description}” has no CUDA, so it cannot use "
            f"{short_model_name(model)}: choose an image marked CUDA."
        )
    if field == "image":
        return "That image is not offered to you: choose one of the images listed."
    if field == "cpu":
        most = max(entitlements.allowed_cpus(config, user))
        return f"Your projects allow up to {most:g} CPU cores: choose one of the values listed."
    if field == "memory":
        largest = entitlements.allowed_memory(config, user)[-1]
        return (
            f"Your projects allow up to {memory_label(largest)} of memory: choose a value listed."
        )
    if field == "accelerator":
        what = short_model_name(model) if model else "That accelerator"
        return f"{what} is not offered to your projects: choose one of the accelerators listed."
    if field == "count" and model is not None:
        cap = entitlements.max_units(config, user, model)
        return f"You may have 1 to {cap} {TIMES} {short_model_name(model)} on one server."
    return message


def _accelerator(
    options: Mapping[str, Any],
    config: PlatformConfig,
    user: UserContext,
    availability: list[ModelAvailability],
) -> tuple[Accelerator | None, int, str | None]:
    """The model, its units and the pinned server: allowed to the user and free now."""
    name = _text(options, "accelerator")
    count_value = _number(options, "count")
    server = _text(options, "server")
    if name in (None, NO_ACCELERATOR):
        if server is not None:
            raise OptionsError(
                "a server can only be pinned together with an accelerator",
                "server",
                "Pin a server only together with an accelerator, or choose “Any server”.",
            )
        if count_value not in (None, 0):
            raise OptionsError(
                "count needs an accelerator; choose one or leave count empty", "count"
            )
        return None, 0, None
    assert name is not None
    count_float = 1.0 if count_value is None else count_value
    if count_float != int(count_float):
        raise OptionsError(f"count must be a whole number (got {count_float:g})", "count")
    count = int(count_float)
    model = entitlements.check_accelerator(config, user, name, count)
    _check_free(model, count, server, availability)
    return model, count, server


def _check_free(
    model: Accelerator, count: int, server: str | None, availability: list[ModelAvailability]
) -> None:
    """``count`` units free on the pinned server, or on some server: free units and units held
    by batch jobs (which the scheduler preempts for a notebook), never another notebook's."""
    live = next((m for m in availability if m.name == model.name), None)
    servers = live.servers if live else ()
    what = short_model_name(model)
    if server is not None:
        pinned = next((s for s in servers if s.node == server), None)
        if pinned is None:
            raise OptionsError(
                f"server {server!r} does not offer {model.name} to you; choose "
                f"one of: {', '.join(s.node for s in servers) or 'none'}",
                "server",
                f"{server} has no {what} for you: choose “Any server with free units” or "
                "one of the servers listed.",
            )
        if pinned.for_notebooks < count:
            raise OptionsError(
                f"server {server} has {pinned.for_notebooks} {model.name} free; ask for "
                f"fewer or choose another server",
                "server",
                f"{server} has {pinned.for_notebooks} {TIMES} {what} free now: ask for fewer or "
                "choose “Any server with free units”.",
            )
    elif not any(s.for_notebooks >= count for s in servers):
        most = max((s.for_notebooks for s in servers), default=0)
        raise OptionsError(
            f"no server has {count} {model.name} free right now (at most {most} "
            "on one server); ask for fewer or try again later",
            "accelerator",
            f"No server has {count} {TIMES} {what} free right now (at most {most} on one server): "
            "ask for fewer, choose another accelerator or try again later.",
        )


def _scratch(options: Mapping[str, Any], config: PlatformConfig) -> str | None:
    """The scratch size: one of ``storage.scratch.sizeChoices`` (default when not given)."""
    offered = config.storage.scratch
    size = _text(options, "scratch")
    if offered is None:
        if size is not None:
            raise OptionsError(
                "this platform offers no scratch disk; leave scratch empty", "scratch"
            )
        return None
    if size is None:
        return offered.default()
    if size not in offered.size_choices:
        raise OptionsError(
            f"scratch {size!r} is not offered; choose one of: {', '.join(offered.size_choices)}",
            "scratch",
            "That scratch size is not offered: choose one of the sizes listed.",
        )
    return size
