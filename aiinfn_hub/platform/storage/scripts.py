"""The shell scripts run in users' pods (``scripts/``), as text to put in container commands."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def script(name: str) -> str:
    """The text of ``scripts/<name>``."""
    return resources.files("aiinfn_hub.platform.storage").joinpath("scripts", name).read_text()
