"""KubeSpawner expands ``{username}``-style templates in every string of volumes, mounts,
containers, labels, annotations and environment values (``str.format``). Values we build are
final, so their braces (shell ``${VAR}``, odd usernames) are doubled to come out unchanged."""

from __future__ import annotations

from typing import Any


def literal(value: Any) -> Any:
    """``value`` with every ``{`` and ``}`` in its strings doubled (recursively)."""
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, list):
        return [literal(item) for item in value]
    if isinstance(value, dict):
        return {key: literal(item) for key, item in value.items()}
    return value
