"""Where the Node programs of ``tools/package.json`` are installed (``scripts/setup`` puts them
in ``.tools/`` of the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "AIINFN_NODE_MODULES"


def node_modules_dir() -> Path:
    """``$AIINFN_NODE_MODULES``, else ``.tools/node_modules`` of the checkout or of the cwd."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    checkout = Path(__file__).resolve().parents[2]
    for base in (checkout, Path.cwd()):
        candidate = base / ".tools" / "node_modules"
        if candidate.is_dir():
            return candidate
    return checkout / ".tools" / "node_modules"


def node_bin(name: str) -> Path:
    """A program installed by npm into the tools folder, e.g. ``configurable-http-proxy``."""
    return node_modules_dir() / ".bin" / name
