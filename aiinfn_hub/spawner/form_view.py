"""Words for people on the spawn form and the admin panel: pure functions over the catalogue.

The form's values stay the catalogue's exact names and quantities (what the validator and the
REST API take); what a person reads is built here: "8 GB" for ``8Gi``, a one-line hint per kind
of accelerator, and the short "profile" line the admin panel and the hub home show.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..config import Accelerator, Image, PlatformConfig, parse_memory
from ..platform.entitlements import UserContext
from ..platform.vocabulary import NO_ACCELERATOR

# what each kind of accelerator is for, one line each (shown under the models of that kind)
KIND_HINTS = {
    "mig": "A fixed share of one GPU with its own memory: for developing, debugging and small "
    "trainings; the quickest to get.",
    "gpu": "All of one card: for real trainings and large models. They are few: stop your "
    "server when you are not using it.",
    "fpga": "A programmable board for low-latency inference of models compiled for it (e.g. "
    "with hls4ml or Vitis); it needs no CUDA image.",
}
TIMES = "\u00d7"  # the multiplication sign, as in "A100 x2"
KIND_NAMES = {"mig": "MIG slices", "gpu": "Whole GPUs", "fpga": "FPGA boards"}

_BINARY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei)$")


def memory_label(quantity: str) -> str:
    """``8Gi`` as "8 GB", ``512Mi`` as "0.5 GB", ``16G`` as "16 GB": what people call it.

    Binary quantities are counted in GiB and decimal ones in GB, so the number a person reads
    is the one written in the configuration; the exact quantity stays in the option's value.
    """
    size = parse_memory(quantity)
    unit = 2**30 if _BINARY.match(quantity) or quantity.isdigit() else 10**9
    return f"{round(size / unit, 1):g} GB"


def short_model_name(model: Accelerator) -> str:
    """The catalogue description without its trailing remark in parentheses."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", model.description) or model.name


def needs_cuda(model: Accelerator | None) -> bool:
    """GPU and MIG models run only with an image built with CUDA (as the validator checks)."""
    return model is not None and model.kind in ("gpu", "mig")


def images_for(images: Iterable[Image], model: Accelerator | None) -> list[Image]:
    """The images that can use ``model`` (every image without one)."""
    return [i for i in images if i.gpu or not needs_cuda(model)]


def default_image_for(
    config: PlatformConfig, images: list[Image], model: Accelerator | None
) -> Image | None:
    """The image the form selects with ``model``: the platform default when it can use the
    model, else the first one that can."""
    usable = images_for(images, model)
    default = config.default_image()
    if default in usable:
        return default
    return usable[0] if usable else None


def profile_line(
    config: PlatformConfig,
    user: UserContext,
    image: Image,
    model: Accelerator | None,
    count: int,
    node: str | None,
) -> str:
    """One short line saying who holds what, e.g. "cms · NVIDIA A100 MIG slice 1g.10gb x1 on
    server-3 · cuda-ml" (with a multiplication sign): the admin panel's Profile column and the
    hub home show it."""
    projects = ", ".join(name for name, _ in user.projects(config)) or "no project"
    holds = f"{short_model_name(model)} {TIMES}{count}" if model is not None else "CPU only"
    if node:
        holds += f" on {node}"
    return f"{projects} · {holds} · {image.name}"


def stored_profile_line(
    config: PlatformConfig, user: UserContext, options: Mapping[str, Any], node: str | None
) -> str | None:
    """The profile line of a server from its stored ``user_options`` (names, not catalogue
    objects), for one found running by a hub that did not start it; None when its image or
    model has left the catalogue since."""
    image = next((i for i in config.images if i.name == options.get("image")), None)
    wanted = options.get("accelerator")
    model = next((a for a in config.accelerators if a.name == wanted), None)
    if image is None or (model is None and wanted not in (None, "", NO_ACCELERATOR)):
        return None
    count = options.get("count")
    return profile_line(config, user, image, model, count if isinstance(count, int) else 1, node)
