"""Kubeconfig files pointing at the emulator, so every client finds it the standard way."""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from pathlib import Path

import yaml

CONTEXT_NAME = "aiinfn-emulator"


def kubeconfig_document(
    server_url: str, namespace: str = "default", *, token: str, ca_pem: bytes
) -> dict[str, object]:
    """A kubeconfig with one cluster/context/user for ``server_url`` (HTTPS, trusting the
    emulator's own CA ``ca_pem``); the user carries the emulator's bearer token, which every
    request must send."""
    cluster = {
        "server": server_url,
        "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
    }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT_NAME, "cluster": cluster}],
        "users": [{"name": CONTEXT_NAME, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT_NAME,
    }


def write_kubeconfig(
    path: str | Path, server_url: str, namespace: str = "default", *, token: str, ca_pem: bytes
) -> Path:
    """Write the kubeconfig and return its path.

    It holds the token that lets its reader run commands through the emulator, so it is
    written to a new file of mode 0600 (like kubectl's) that then replaces ``path``: an
    existing file readable by others, or a symlink placed there, never receives it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = kubeconfig_document(server_url, namespace, token=token, ca_pem=ca_pem)
    text = yaml.safe_dump(document, sort_keys=False)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target
