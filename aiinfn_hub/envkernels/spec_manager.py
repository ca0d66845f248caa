"""The kernel spec manager of the single-user server: installed kernels plus discovered ones.

Set with ``c.ServerApp.kernel_spec_manager_class`` (images/singleuser/ does). Every kernel
list request of JupyterLab asks it; the scan result is kept for ``refresh_interval`` seconds
so a request costs a directory scan at most once a minute.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, default, validate

from .discovery import Area, Environment, ScanLimits, scan_areas
from .names import VALID_NAME, VALID_TAG, kernel_name
from .specs import DEFAULT_MANAGED_TAG, DEFAULT_USER_TAG, ApptainerSettings, kernel_spec

# the platform's storage config mounts the managed area here (storage.environments.mountPath);
# the spawner may say otherwise through this variable
ENVIRONMENTS_DIR_VARIABLE = "AIINFN_ENVIRONMENTS_DIR"
DEFAULT_ENVIRONMENTS_DIR = "/envs"
RESOURCES = Path(__file__).parent / "resources"


@dataclass(frozen=True)
class DiscoveredKernel:
    """A kernel offered for a discovered environment."""

    name: str
    environment: Environment
    spec: KernelSpec


def _python_resources() -> str:
    """The logos of the server's own ipykernel (never files of the environment: a kernel.js
    there would run in the browser), else our own."""
    found = importlib.util.find_spec("ipykernel")
    if found is not None and found.origin is not None:
        resources = Path(found.origin).parent / "resources"
        if resources.is_dir():
            return str(resources)
    return str(RESOURCES / "python")


class EnvironmentKernelSpecManager(KernelSpecManager):
    """Offers every environment of the managed area and of the user's ``~/envs`` as a kernel."""

    managed_areas = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help=f"""Managed environment areas, as ``{{tag: folder}}``: every conda environment,
        venv and Apptainer image (``*.sif``) found in a folder is offered as a kernel shown as
        "Python (managed: <name>)" or "Apptainer: <name>.sif", named
        ``<name_prefix><tag>-<name>``. The default is
        ``{{"{DEFAULT_MANAGED_TAG}": "/envs"}}``, where the platform mounts the storage config's
        ``environments`` area (``environments.mountPath``); the environment variable
        ``{ENVIRONMENTS_DIR_VARIABLE}``, when set, replaces ``/envs``. Tags are lowercase letters
        and digits, distinct across ``managed_areas`` and ``user_areas``; a tag other than
        ``{DEFAULT_MANAGED_TAG}`` also shows in the display name. A folder that does not
        exist offers nothing (no error). Changing a tag renames the kernels of its area, so
        notebooks saved with the old names ask for a kernel again.""",
    )

    @default("managed_areas")
    def _default_managed_areas(self) -> dict[str, str]:
        folder = os.environ.get(ENVIRONMENTS_DIR_VARIABLE) or DEFAULT_ENVIRONMENTS_DIR
        return {DEFAULT_MANAGED_TAG: folder}

    user_areas = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        default_value={DEFAULT_USER_TAG: "~/envs"},
        config=True,
        help=f"""The user's own environment areas, as ``{{tag: folder}}`` (``~`` is the home).
        Default ``{{"{DEFAULT_USER_TAG}": "~/envs"}}``: where ``aiinfn-envs clone`` puts
        clones, and where users may create their own (``python -m venv ~/envs/NAME``,
        ``conda create -p ~/envs/NAME``). Shown as "Python (my clone: <name>)" and
        "Apptainer (mine): <name>.sif", so a clone is told apart from the managed environment
        of the same name. Same tag rules as ``managed_areas``.""",
    )

    max_depth = Int(
        2,
        min=1,
        config=True,
        help="""How many folder levels below an area are searched: 1 finds only
        ``/envs/NAME``, the default 2 also ``/envs/GROUP/NAME``. The search never goes into
        an environment, nor into folders whose name starts with a dot.""",
    )

    max_entries = Int(
        5000,
        min=1,
        config=True,
        help="""At most this many directory entries are looked at in each area per scan
        (default 5000), so a home with thousands of folders cannot slow down the kernel list.
        When the limit is hit the rest of that area is skipped and a warning is logged once;
        environments nearer the top of the area are found first (breadth-first).""",
    )

    refresh_interval = Float(
        60.0,
        min=0.0,
        config=True,
        help="""Seconds a scan result is reused before the areas are scanned again (default
        60): a new environment or clone appears in the launcher within this time. 0 scans on
        every kernel list request.""",
    )

    name_prefix = Unicode(
        "env-",
        config=True,
        help="""Prefix of the kernel names of discovered environments (default ``env-``),
        lowercase letters, digits, ``.``, ``_`` and ``-``. A kernelspec installed the usual
        way (``jupyter kernelspec install``) with the same name as a discovered one wins, so
        an administrator can override a discovered kernel. Changing the prefix renames all
        discovered kernels.""",
    )

    require_ipykernel = Bool(
        True,
        config=True,
        help="""Offer a conda environment or venv only when it has the ``ipykernel`` package
        (default True): without it the kernel could not start. The check reads the
        environment's site-packages (and its ``.pth`` files, and the base interpreter's
        site-packages for ``--system-site-packages`` venvs) without running its Python.
        Environments left out are logged once with how to add ipykernel. Apptainer images are
        always offered: their content is not inspected.""",
    )

    apptainer_command = Unicode(
        "apptainer",
        config=True,
        help="""The Apptainer program that runs the kernels of ``*.sif`` images (default
        ``apptainer``, looked up on PATH when the kernel starts; ``singularity`` works too).""",
    )

    apptainer_nv = Bool(
        True,
        config=True,
        help="""Pass ``--nv`` to ``apptainer exec`` (default True), which makes the server's
        NVIDIA GPUs and driver libraries visible inside the image. On a server without a GPU
        Apptainer prints a warning and goes on.""",
    )

    apptainer_binds = List(
        Unicode(),
        config=True,
        help="""Extra ``--bind`` values for ``apptainer exec``, e.g. ``["/envs",
        "/scratch:/scratch:rw"]`` (default none: Apptainer binds the home and /tmp itself).
        Apptainer refuses to start when a bound source folder does not exist. The Jupyter
        runtime folder (where the connection file is) is bound automatically when it is
        outside the home and /tmp.""",
    )

    apptainer_extra_args = List(
        Unicode(),
        config=True,
        help="""More options for ``apptainer exec``, placed before the image, e.g.
        ``["--cleanenv"]`` (default none).""",
    )

    apptainer_python = Unicode(
        "python3",
        config=True,
        help="""The Python inside an Apptainer image that runs ``-m ipykernel_launcher``
        (default ``python3``, which Debian/Ubuntu-based and conda-based images both have). The
        image must contain ipykernel.""",
    )

    @validate("managed_areas", "user_areas")
    def _valid_areas(self, proposal: Any) -> dict[str, str]:
        areas: dict[str, str] = proposal["value"]
        mine = proposal["trait"].name
        other = self.user_areas if mine == "managed_areas" else self.managed_areas
        for tag, folder in areas.items():
            if not VALID_TAG.fullmatch(tag):
                raise TraitError(
                    f"environment area tag {tag!r} must be lowercase letters and digits, "
                    'e.g. {"managed": "/envs"}'
                )
            if tag in other:
                raise TraitError(f"environment area tag {tag!r} is used twice: rename one")
            if not folder:
                raise TraitError(f"environment area {tag!r} has no folder: give one, or drop it")
        return areas

    @validate("name_prefix")
    def _valid_prefix(self, proposal: Any) -> str:
        prefix: str = proposal["value"]
        if prefix and not VALID_NAME.fullmatch(prefix):
            raise TraitError(
                f"name_prefix {prefix!r} may hold only lowercase letters, digits, '.', '_', '-'"
            )
        return prefix

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cache: tuple[float, dict[str, DiscoveredKernel]] | None = None
        self._reported: set[str] = set()

    # ---- discovery ----

    def areas(self) -> list[Area]:
        """The areas to scan, managed ones first."""
        managed = [Area(t, Path(f), True) for t, f in self.managed_areas.items()]
        return managed + [Area(t, Path(f), False) for t, f in self.user_areas.items()]

    def apptainer_settings(self) -> ApptainerSettings:
        """How Apptainer kernels start, from the configuration."""
        binds = list(self.apptainer_binds)
        runtime = Path(jupyter_runtime_dir())
        if not any(runtime.is_relative_to(p) for p in (Path.home(), Path("/tmp"))):
            binds.append(str(runtime))
        return ApptainerSettings(
            command=self.apptainer_command,
            nv=self.apptainer_nv,
            binds=tuple(binds),
            extra_args=tuple(self.apptainer_extra_args),
            python=self.apptainer_python,
        )

    def _report_once(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            self.log.warning(message)

    def _scan(self) -> dict[str, DiscoveredKernel]:
        result = scan_areas(self.areas(), ScanLimits(self.max_depth, self.max_entries))
        for problem in result.problems:
            self._report_once(problem)
        apptainer = self.apptainer_settings()
        python_resources = _python_resources()
        kernels: dict[str, DiscoveredKernel] = {}
        for env in result.environments:
            if self.require_ipykernel and not env.has_ipykernel:
                self._report_once(
                    f"{env.path} is not offered as a kernel: it has no ipykernel "
                    f"(install it with `{env.path}/bin/python -m pip install ipykernel`)"
                )
                continue
            name = kernel_name(self.name_prefix, env.area.tag, env.relative_path)
            resources = python_resources
            if env.kind == "apptainer":
                resources = str(RESOURCES / "apptainer")
            spec = KernelSpec(resource_dir=resources, **kernel_spec(env, apptainer))
            kernels[name] = DiscoveredKernel(name, env, spec)
        return kernels

    def discovered_kernels(self) -> dict[str, DiscoveredKernel]:
        """The discovered kernels by name, scanned again once ``refresh_interval`` has passed."""
        now = time.monotonic()
        if self._cache is None or now - self._cache[0] >= self.refresh_interval:
            self._cache = (now, self._scan())
        return self._cache[1]

    # ---- the KernelSpecManager API ----

    def _allowed(self, name: str) -> bool:
        return not self.allowed_kernelspecs or name in self.allowed_kernelspecs

    def find_kernel_specs(self) -> dict[str, str]:
        """Installed kernels (which win on a name clash) and discovered ones: name → folder."""
        specs: dict[str, str] = super().find_kernel_specs()
        for name, kernel in self.discovered_kernels().items():
            if name not in specs and self._allowed(name):
                specs[name] = kernel.spec.resource_dir
        return specs

    def get_all_specs(self) -> dict[str, Any]:
        """Every kernel's spec (what JupyterLab's kernel list asks for): the installed ones as
        the base class reads them, the discovered ones from the scan, without looking each
        discovered name up in every kernel folder."""
        installed: dict[str, str] = super().find_kernel_specs()
        specs: dict[str, Any] = {}
        for name, resource_dir in installed.items():
            try:
                spec = super().get_kernel_spec(name)
            except NoSuchKernel:
                continue
            except Exception:
                self.log.warning("Error loading kernelspec %r", name, exc_info=True)
                continue
            specs[name] = {"resource_dir": resource_dir, "spec": spec.to_dict()}
        for name, kernel in self.discovered_kernels().items():
            if name not in installed and self._allowed(name):
                specs[name] = {
                    "resource_dir": kernel.spec.resource_dir,
                    "spec": kernel.spec.to_dict(),
                }
        return specs

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        """The spec of an installed kernel, else of a discovered one (NoSuchKernel if neither)."""
        try:
            spec: KernelSpec = super().get_kernel_spec(kernel_name)
            return spec
        except NoSuchKernel:
            found = self.discovered_kernels().get(kernel_name.lower())
            if found is None or not self._allowed(found.name):
                raise
            return found.spec
