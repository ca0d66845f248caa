"""Whether a Python environment can run a Jupyter kernel, decided without running it.

Running each environment's interpreter to ask would cost a process per environment on every
scan (and hang on a broken network file system); instead we look for the ``ipykernel`` package
where that interpreter's ``site`` module would find it: the environment's own site-packages,
the folders its ``.pth`` files name (editable and development installs), and, for a venv made
with ``--system-site-packages``, its base interpreter's site-packages.
"""

from __future__ import annotations

import os
from pathlib import Path

# bounds: a site-packages folder may hold thousands of entries, a .pth file is a few lines
MAX_PTH_FILES = 64
MAX_PTH_BYTES = 64 * 1024


def read_pyvenv_cfg(prefix: Path) -> dict[str, str]:
    """The ``key = value`` pairs of a venv's ``pyvenv.cfg`` (empty when absent or unreadable)."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(errors="replace")
    except OSError:
        return {}
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs[key.strip().lower()] = value.strip()
    return pairs


def site_packages_dirs(prefix: Path, version: str | None = None) -> list[Path]:
    """The ``lib/python3.X/site-packages`` folders of a prefix, only 3.X = ``version`` if given."""
    found = []
    try:
        with os.scandir(prefix / "lib") as entries:
            for entry in entries:
                if not entry.name.startswith("python3"):
                    continue
                if version is not None and entry.name != f"python{version}":
                    continue
                candidate = Path(entry.path) / "site-packages"
                if candidate.is_dir():
                    found.append(candidate)
    except OSError:
        return []
    return sorted(found)


def _base_site_packages(prefix: Path) -> list[Path]:
    """The base interpreter's site-packages of a venv that includes them, else nothing."""
    cfg = read_pyvenv_cfg(prefix)
    if cfg.get("include-system-site-packages", "false").lower() != "true" or "home" not in cfg:
        return []
    version = cfg.get("version_info") or cfg.get("version") or ""
    major_minor = ".".join(version.split(".")[:2]) or None
    return site_packages_dirs(Path(cfg["home"]).parent, major_minor)


def _pth_folders(site_packages: Path) -> list[Path]:
    """The folders named by the ``.pth`` files of a site-packages folder (import lines aside)."""
    folders: list[Path] = []
    try:
        with os.scandir(site_packages) as entries:
            pth_files = sorted(e.path for e in entries if e.name.endswith(".pth"))
    except OSError:
        return []
    for pth in pth_files[:MAX_PTH_FILES]:
        try:
            with open(pth, "rb") as handle:
                text = handle.read(MAX_PTH_BYTES).decode(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "import ", "import\t")):
                folders.append(site_packages / line)
    return folders


def _holds_ipykernel(folder: Path) -> bool:
    try:
        return (folder / "ipykernel" / "__init__.py").is_file()
    except OSError:
        return False


def has_ipykernel(prefix: Path) -> bool:
    """Whether ``import ipykernel`` would succeed in the environment at ``prefix``."""
    candidates = site_packages_dirs(prefix) + _base_site_packages(prefix)
    if any(_holds_ipykernel(folder) for folder in candidates):
        return True
    return any(_holds_ipykernel(f) for folder in candidates for f in _pth_folders(folder))
