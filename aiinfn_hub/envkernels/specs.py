"""Kernel specifications for discovered environments: pure builders, no I/O.

A Python environment's kernel runs its own interpreter with ``ipykernel_launcher``, with the
environment's ``bin`` first on ``PATH`` (so ``!pip`` and command-line tools are the
environment's). An Apptainer image's kernel runs ``ipykernel_launcher`` inside the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .discovery import Environment

# the tags of the default areas, which read best without the tag in the display name
DEFAULT_MANAGED_TAG = "managed"
DEFAULT_USER_TAG = "mine"


@dataclass(frozen=True)
class ApptainerSettings:
    """How an Apptainer image's kernel is started."""

    command: str = "apptainer"
    nv: bool = True
    binds: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    python: str = "python3"


def display_name(env: Environment) -> str:
    """What the launcher shows: which kind of environment, whose, and its name."""
    name = env.relative_path
    if env.kind == "apptainer":
        if env.area.managed:
            where = "" if env.area.tag == DEFAULT_MANAGED_TAG else f" ({env.area.tag})"
        else:
            where = " (mine)" if env.area.tag == DEFAULT_USER_TAG else f" (mine, {env.area.tag})"
        return f"Apptainer{where}: {name}"
    if env.area.managed:
        whose = "managed" if env.area.tag == DEFAULT_MANAGED_TAG else f"managed, {env.area.tag}"
    else:
        whose = "my clone" if env.area.tag == DEFAULT_USER_TAG else f"my clone, {env.area.tag}"
    return f"Python ({whose}: {name})"


def _metadata(env: Environment) -> dict[str, Any]:
    return {
        "aiinfn_env": {
            "kind": env.kind,
            "path": str(env.path),
            "area": env.area.tag,
            "managed": env.area.managed,
        }
    }


def python_kernel_spec(env: Environment) -> dict[str, Any]:
    """The kernel.json content for a conda environment or a venv."""
    variable = "CONDA_PREFIX" if env.kind == "conda" else "VIRTUAL_ENV"
    return {
        "argv": [
            str(env.path / "bin" / "python"),
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        "display_name": display_name(env),
        "language": "python",
        "interrupt_mode": "signal",
        # jupyter_client substitutes ${PATH} with the server's PATH when it starts the kernel
        "env": {"PATH": f"{env.path / 'bin'}:${{PATH}}", variable: str(env.path)},
        "metadata": _metadata(env),
    }


def apptainer_kernel_spec(env: Environment, settings: ApptainerSettings) -> dict[str, Any]:
    """The kernel.json content for an Apptainer image (Apptainer binds the home and /tmp)."""
    argv = [settings.command, "exec"]
    if settings.nv:
        argv.append("--nv")
    for bind in settings.binds:
        argv += ["--bind", bind]
    argv += [*settings.extra_args, str(env.path)]
    argv += [settings.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return {
        "argv": argv,
        "display_name": display_name(env),
        "language": "python",
        "interrupt_mode": "signal",
        "env": {},
        "metadata": _metadata(env),
    }


def kernel_spec(env: Environment, apptainer: ApptainerSettings) -> dict[str, Any]:
    """The kernel.json content for any discovered environment."""
    if env.kind == "apptainer":
        return apptainer_kernel_spec(env, apptainer)
    return python_kernel_spec(env)
