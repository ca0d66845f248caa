"""Finding environments in the areas to scan, within bounds.

A user can keep thousands of folders in their home and the managed area sits on a network
file system, so the scan is breadth-first, stops at a depth and after a number of directory
entries, never follows a symbolic link out of its area, never descends into an environment
and never raises for a folder it cannot read: it reports it, and the caller logs it once.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .site_packages import has_ipykernel

Kind = Literal["conda", "venv", "apptainer"]


@dataclass(frozen=True)
class Area:
    """A folder whose environments are offered: the managed area or one of the user's own."""

    tag: str
    root: Path
    managed: bool


@dataclass(frozen=True)
class Environment:
    """One environment found in an area."""

    kind: Kind
    path: Path  # as found under the area's root (a symbolic link inside the area stays one)
    area: Area
    relative_path: str  # "/"-separated, from the area's root
    has_ipykernel: bool  # always True for Apptainer images: their insides are not inspected


@dataclass(frozen=True)
class ScanLimits:
    """How far a scan goes in each area."""

    max_depth: int = 2
    max_entries: int = 5000


@dataclass
class ScanResult:
    """The environments found and, for the log, what could not be looked at."""

    environments: list[Environment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def python_environment_kind(path: Path) -> Literal["conda", "venv"] | None:
    """``conda`` for a conda prefix, ``venv`` for a venv, None for any other folder."""
    try:
        if not (path / "bin" / "python").is_file():
            return None
        if (path / "conda-meta").is_dir():
            return "conda"
        if (path / "pyvenv.cfg").is_file():
            return "venv"
    except OSError:
        return None
    return None


def _inside(path: Path, real_root: Path) -> bool:
    """Whether a symbolic link resolves to a place inside the area (dangling links do not)."""
    try:
        return path.resolve(strict=True).is_relative_to(real_root)
    except (OSError, RuntimeError):  # dangling, unreadable or a loop
        return False


def scan_area(area: Area, limits: ScanLimits) -> ScanResult:
    """The environments of one area, breadth-first and in name order, within ``limits``."""
    result = ScanResult()
    root = area.root.expanduser()
    try:
        real_root = root.resolve(strict=True)
    except FileNotFoundError:
        return result  # an area that is not mounted (or not made yet) offers nothing
    except (OSError, RuntimeError) as error:
        result.problems.append(f"cannot open the environments folder {root}: {error}")
        return result
    budget = limits.max_entries
    truncated = False
    folders: deque[tuple[Path, int]] = deque([(root, 1)])
    while folders:
        folder, depth = folders.popleft()
        try:
            with os.scandir(folder) as listing:
                entries = []
                for entry in listing:
                    if budget == 0:
                        truncated = True
                        break
                    budget -= 1
                    entries.append(entry)
        except OSError as error:
            result.problems.append(f"cannot list {folder}: {error.strerror or error}")
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                if entry.is_symlink() and not _inside(path, real_root):
                    continue
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError as error:
                result.problems.append(f"cannot look at {path}: {error.strerror or error}")
                continue
            relative = path.relative_to(root).as_posix()
            if is_dir:
                kind = python_environment_kind(path)
                if kind is not None:
                    ready = has_ipykernel(path)
                    result.environments.append(Environment(kind, path, area, relative, ready))
                elif depth < limits.max_depth:
                    folders.append((path, depth + 1))
            elif is_file and entry.name.endswith(".sif"):
                result.environments.append(Environment("apptainer", path, area, relative, True))
        if truncated:
            result.problems.append(
                f"stopped looking for environments in {root} after {limits.max_entries} "
                "entries (EnvironmentKernelSpecManager.max_entries): move environments "
                "nearer the top of the folder or raise the limit"
            )
            break
    return result


def scan_areas(areas: list[Area], limits: ScanLimits) -> ScanResult:
    """The environments of all areas, in the order of the areas."""
    total = ScanResult()
    for area in areas:
        found = scan_area(area, limits)
        total.environments += found.environments
        total.problems += found.problems
    return total
