"""``aiinfn-envs``: list the environments offered as kernels, clone one into the home.

The command reads the same settings as the server (the ``EnvironmentKernelSpecManager``
section of the ``jupyter_server_config.json`` files on Jupyter's config path; Python config
files are not executed), so it sees the areas the launcher shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jupyter_core.paths import jupyter_config_path
from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound, JSONFileConfigLoader

from .clone import CloneError, clone_environment, clone_target, find_conda
from .discovery import Environment, ScanLimits, scan_areas
from .names import kernel_name
from .spec_manager import EnvironmentKernelSpecManager
from .specs import display_name


def server_json_config() -> Config:
    """The merged ``jupyter_server_config.json`` files, highest priority last."""
    config = Config()
    for folder in reversed(jupyter_config_path()):
        try:
            config.merge(
                JSONFileConfigLoader("jupyter_server_config.json", path=folder).load_config()
            )
        except ConfigFileNotFound:
            continue
    return config


def _environments(manager: EnvironmentKernelSpecManager) -> list[Environment]:
    limits = ScanLimits(manager.max_depth, manager.max_entries)
    return scan_areas(manager.areas(), limits).environments


def list_environments(manager: EnvironmentKernelSpecManager) -> int:
    """Print every environment found, its kernel name and whether it is offered."""
    found = _environments(manager)
    if not found:
        folders = ", ".join(str(a.root) for a in manager.areas())
        print(f"no environments in {folders}")
    for env in found:
        name = kernel_name(manager.name_prefix, env.area.tag, env.relative_path)
        offered = env.has_ipykernel or not manager.require_ipykernel
        note = "" if offered else "  (not offered: no ipykernel)"
        print(f"{display_name(env)}{note}\n    kernel {name}, {env.kind}, {env.path}")
    return 0


def resolve_source(text: str, manager: EnvironmentKernelSpecManager) -> Path:
    """The environment folder meant by ``text``: a managed environment's name (its path in a
    managed area), a folder, or a kernel name."""
    if not text.startswith(("/", "~", ".")):
        for area in manager.areas():
            candidate = area.root.expanduser() / text
            if area.managed and candidate.exists():
                return candidate
    folder = Path(text).expanduser()
    if folder.exists():
        return folder.absolute()
    for env in _environments(manager):
        if kernel_name(manager.name_prefix, env.area.tag, env.relative_path) == text:
            return env.path
    raise CloneError(
        f"no managed environment named {text!r}: `aiinfn-envs list` shows them "
        "(give a folder's path to clone another environment)"
    )


def clone(
    manager: EnvironmentKernelSpecManager, source_text: str, name: str | None, copy: bool
) -> int:
    """Clone an environment into the first user area (``~/envs``) and say how to use it."""
    if not manager.user_areas:
        raise CloneError(
            "no folder for clones is configured (EnvironmentKernelSpecManager.user_areas)"
        )
    tag, folder = next(iter(manager.user_areas.items()))
    source = resolve_source(source_text, manager)
    target = clone_target(name or source.name, Path(folder), Path.home())
    print(f"cloning {source} into {target} ...", file=sys.stderr)
    result = clone_environment(source, target, conda=None if copy else find_conda())
    print(f"cloned {result.source} into {result.target} ({result.method})")
    for note in result.notes:
        print(f"note: {note}")
    cloned = [
        e
        for e in _environments(manager)
        if e.path == target or e.path.resolve() == target.resolve()
    ]
    if cloned and cloned[0].has_ipykernel:
        env = cloned[0]
        print(
            f'its kernel "{display_name(env)}" '
            f"({kernel_name(manager.name_prefix, tag, env.relative_path)}) appears in the "
            f"JupyterLab launcher within {manager.refresh_interval:g} seconds: reload the page"
        )
    else:
        print(
            f"it has no ipykernel, so it gets no kernel: install it with "
            f"`{target}/bin/python -m pip install ipykernel`"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``aiinfn-envs`` command."""
    parser = argparse.ArgumentParser(
        prog="aiinfn-envs",
        description="The software environments offered as Jupyter kernels: list them, or clone "
        "a managed one into your home (~/envs) to change it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the environments found and their kernels")
    cloning = commands.add_parser(
        "clone",
        help="clone an environment into ~/envs/NAME, where its kernel is found as 'my clone'",
    )
    cloning.add_argument(
        "source",
        help="a managed environment's name as `list` shows it (e.g. torch-2.3), or a folder",
    )
    cloning.add_argument("--name", help="the clone's folder name in ~/envs (default: the source's)")
    cloning.add_argument(
        "--copy",
        action="store_true",
        help="copy a conda environment instead of running `conda create --clone`",
    )
    args = parser.parse_args(argv)
    manager = EnvironmentKernelSpecManager(config=server_json_config())
    try:
        if args.command == "list":
            return list_environments(manager)
        return clone(manager, args.source, args.name, args.copy)
    except CloneError as error:
        print(f"aiinfn-envs: {error}", file=sys.stderr)
        return 1
