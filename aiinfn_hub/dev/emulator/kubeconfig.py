"""Kubeconfig files pointing at the emulator, so every client finds it the standard way."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT_NAME = "aiinfn-emulator"


def kubeconfig_document(server_url: str, namespace: str = "default") -> dict[str, object]:
    """A kubeconfig with one cluster/context/user for ``server_url`` (plain HTTP, no auth)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": server_url}}],
        # the emulator authenticates nobody; an empty user keeps every client happy
        "users": [{"name": CONTEXT_NAME, "user": {}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT_NAME,
    }


def write_kubeconfig(path: str | Path, server_url: str, namespace: str = "default") -> Path:
    """Write the kubeconfig (mode 0600, like kubectl does) and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig_document(server_url, namespace), sort_keys=False)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return target
