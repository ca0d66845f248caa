"""Cloning an environment into the user's home, where its kernel is found as "my clone".

A conda environment is cloned with ``conda create --clone`` when conda (or mamba) is there:
conda rewrites the prefix compiled into binaries. A venv, or a conda environment without conda,
is copied and its scripts are fixed: the same files as the source, offline and in seconds, even
for packages that are not on PyPI (a fresh venv with ``pip install`` of the same list would need
the network, could get other builds, and fails for local wheels). A clone's files are made
writable by the user, so they can install more packages into it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .discovery import python_environment_kind

VALID_CLONE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# text files larger than this in bin/ are not scripts: left as they are
MAX_SCRIPT_BYTES = 1024 * 1024


class CloneError(Exception):
    """A clone was refused or failed; the message says what the user can do."""


@dataclass
class CloneResult:
    """What was cloned where, how, and what the user should know."""

    source: Path
    target: Path
    method: str
    notes: list[str] = field(default_factory=list)


def clone_target(name: str, user_area: Path, home: Path) -> Path:
    """The folder a clone named ``name`` goes to, refused unless new and inside the home."""
    if not VALID_CLONE_NAME.fullmatch(name):
        raise CloneError(
            f"{name!r} is not a usable name for a clone: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit), e.g. torch-2.3-mine"
        )
    real_home = home.resolve()
    area = user_area.expanduser()
    if not area.resolve().is_relative_to(real_home):
        raise CloneError(
            f"clones go to {area}, which is outside your home folder {home}: "
            "ask the platform administrators to fix EnvironmentKernelSpecManager.user_areas"
        )
    target = area / name
    if os.path.lexists(target):
        raise CloneError(
            f"{target} already exists: choose another name with --name, or remove it first "
            f"(rm -r {target}) if you no longer need it"
        )
    if not target.resolve().is_relative_to(real_home):
        raise CloneError(f"{target} would be outside your home folder {home}: choose another name")
    return target


def _check_source(source: Path) -> str:
    """The kind of the environment to clone (conda or venv), or a CloneError saying why not."""
    if source.is_file() and source.name.endswith(".sif"):
        raise CloneError(
            f"{source} is an Apptainer image: images are read-only, use it as it is (its "
            "kernel is in the launcher); to change it, build a new image from it"
        )
    if not source.is_dir():
        raise CloneError(f"{source} does not exist: `aiinfn-envs list` shows what can be cloned")
    kind = python_environment_kind(source)
    if kind is None:
        raise CloneError(
            f"{source} is neither a conda environment (conda-meta/ and bin/python) nor a venv "
            "(pyvenv.cfg and bin/python): `aiinfn-envs list` shows what can be cloned"
        )
    return kind


def _walk_fixing(source: Path, target: Path) -> None:
    """Make the copy writable by its owner and keep its relative links that left the tree."""
    real_source = source.resolve()
    target.chmod(stat.S_IMODE(target.stat().st_mode) | stat.S_IWUSR)
    for folder, dirs, files in os.walk(target):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                link = os.readlink(path)
                if os.path.isabs(link):
                    continue
                original = source / path.relative_to(target)
                pointed = Path(os.path.normpath(original.parent / link))
                if not pointed.resolve().is_relative_to(real_source):
                    path.unlink()
                    path.symlink_to(pointed)
                continue
            mode = path.lstat().st_mode
            path.chmod(stat.S_IMODE(mode) | stat.S_IWUSR)


def _rewrite_prefix(target: Path, old_prefixes: list[str]) -> int:
    """Replace the source's path by the clone's in bin/ scripts and pyvenv.cfg: the number of
    files changed. Binary files are left alone (conda's own clone fixes those)."""
    candidates = [target / "pyvenv.cfg"]
    with contextlib.suppress(OSError):
        candidates += sorted((target / "bin").iterdir())
    new = str(target).encode()
    olds = sorted((p.encode() for p in set(old_prefixes)), key=len, reverse=True)
    changed = 0
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SCRIPT_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        fixed = data
        for old in olds:
            fixed = fixed.replace(old, new)
        if fixed != data:
            path.write_bytes(fixed)
            changed += 1
    return changed


def copy_environment(source: Path, target: Path) -> int:
    """Copy an environment folder and fix its scripts: the number of scripts fixed."""
    shutil.copytree(source, target, symlinks=True)
    _walk_fixing(source, target)
    return _rewrite_prefix(target, [str(source), str(source.resolve())])


def _first_failure(error: shutil.Error | OSError) -> str:
    """A short reason: copytree gathers (source, destination, reason) triples."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list):
        failures = error.args[0]
        return f"{len(failures)} files failed, e.g. {failures[0][0]}: {failures[0][2]}"
    return str(error)


def find_conda() -> str | None:
    """The conda (or mamba) program on PATH, if any."""
    return shutil.which("conda") or shutil.which("mamba")


def clone_environment(
    source: Path,
    target: Path,
    *,
    conda: str | None,
) -> CloneResult:
    """Clone ``source`` into ``target`` (from :func:`clone_target`), removing a partial clone
    if it fails. ``conda`` is the conda/mamba program for conda environments (None: copy); its
    output goes to the user's terminal."""
    kind = _check_source(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):  # made since clone_target looked: never remove what is not ours
        raise CloneError(f"{target} appeared meanwhile: choose another name with --name")
    try:
        if kind == "conda" and conda is not None:
            command = [conda, "create", "--yes", "--prefix", str(target), "--clone", str(source)]
            code = subprocess.run(command, check=False).returncode
            if code != 0:
                raise CloneError(
                    f"`{' '.join(command)}` failed (exit code {code}, its messages are above); "
                    "to copy the folder instead, run the clone again with --copy"
                )
            return CloneResult(source, target, f"{Path(conda).name} create --clone")
        fixed = copy_environment(source, target)
    except (shutil.Error, OSError) as error:
        shutil.rmtree(target, ignore_errors=True)
        raise CloneError(
            f"could not clone {source} ({_first_failure(error)}): nothing was kept; if files of "
            "the environment are unreadable, ask its maintainers to make them readable"
        ) from error
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    result = CloneResult(source, target, f"copy ({fixed} scripts fixed)")
    if kind == "conda":
        result.notes.append(
            "the conda environment was copied, not cloned by conda (conda was not found, or "
            f"--copy was given): programs with the old path compiled in may still use files of "
            f"{source}"
        )
    return result
