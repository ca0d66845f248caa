"""Nested mappings as dotted key paths (``limits.maxGpus``), the way the configuration's errors,
the admin panel's group properties and the chart's ``custom.aiinfn`` keys name a setting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def dotted_items(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``: every leaf (anything but a mapping) by its path."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(dotted_items(value, f"{path}."))
        else:
            flat[path] = value
    return flat
