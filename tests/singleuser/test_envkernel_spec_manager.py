"""The kernel spec manager through jupyter_client's own API, and real kernels it starts."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from envkernel_builders import (
    make_conda_prefix,
    make_sif,
    make_venv,
    manager_for,
    recorded_calls,
    run_code,
)
from jupyter_client.kernelspec import NoSuchKernel
from traitlets import TraitError

from aiinfn_hub.envkernels.spec_manager import (
    ENVIRONMENTS_DIR_VARIABLE,
    EnvironmentKernelSpecManager,
)


def test_environments_are_listed_through_the_jupyter_client_api(managed: Path, home: Path) -> None:
    make_venv(managed / "torch-2.3", ipykernel=True)
    make_conda_prefix(managed / "root-6.30", ipykernel=True)
    make_sif(managed / "root-6.30.sif")
    make_venv(home / "envs" / "torch-2.3", ipykernel=True)
    manager = manager_for(managed, home)

    specs = manager.find_kernel_specs()
    assert set(specs) == {
        "python3",
        "env-managed-torch-2.3",
        "env-managed-root-6.30",
        "env-managed-root-6.30.sif",
        "env-mine-torch-2.3",
    }
    shown = {name: manager.get_kernel_spec(name).display_name for name in specs}
    assert shown["env-managed-torch-2.3"] == "Python (managed: torch-2.3)"
    assert shown["env-mine-torch-2.3"] == "Python (my clone: torch-2.3)"
    assert shown["env-managed-root-6.30"] == "Python (managed: root-6.30)"
    assert shown["env-managed-root-6.30.sif"] == "Apptainer: root-6.30.sif"

    conda = manager.get_kernel_spec("env-managed-root-6.30")
    assert conda.argv == [
        str(managed / "root-6.30" / "bin" / "python"),
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    assert conda.env == {
        "PATH": f"{managed / 'root-6.30' / 'bin'}:${{PATH}}",
        "CONDA_PREFIX": str(managed / "root-6.30"),
    }
    assert conda.language == "python"
    assert conda.metadata["aiinfn_env"]["kind"] == "conda"
    every = manager.get_all_specs()
    assert every.keys() == specs.keys()
    assert every["env-mine-torch-2.3"]["spec"]["display_name"] == "Python (my clone: torch-2.3)"
    assert Path(every["env-managed-root-6.30.sif"]["resource_dir"], "logo-svg.svg").is_file()
    with pytest.raises(NoSuchKernel):
        manager.get_kernel_spec("env-managed-nothing")


def test_the_apptainer_command_line_follows_the_settings(managed: Path, home: Path) -> None:
    image = make_sif(managed / "hep" / "root-6.30.sif")
    manager = manager_for(
        managed,
        home,
        apptainer_command="/opt/apptainer/bin/apptainer",
        apptainer_binds=["/envs", "/scratch:/scratch:rw"],
        apptainer_extra_args=["--cleanenv"],
        apptainer_python="python",
    )
    (name,) = (n for n in manager.find_kernel_specs() if n != "python3")
    spec = manager.get_kernel_spec(name)
    assert spec.argv == [
        "/opt/apptainer/bin/apptainer",
        "exec",
        "--nv",
        "--bind",
        "/envs",
        "--bind",
        "/scratch:/scratch:rw",
        "--cleanenv",
        str(image),
        "python",
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    assert spec.display_name == "Apptainer: hep/root-6.30.sif"
    manager.apptainer_nv = False
    manager.apptainer_binds = []
    assert "--nv" not in manager.get_kernel_spec(name).argv


def test_environments_without_ipykernel_are_left_out_and_logged_once(
    managed: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_venv(managed / "bare", ipykernel=False)
    manager = manager_for(managed, home, log=logging.getLogger("envkernels-test"))
    with caplog.at_level(logging.INFO, logger="envkernels-test"):
        assert set(manager.find_kernel_specs()) == {"python3"}
        assert set(manager.find_kernel_specs()) == {"python3"}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "bare" in messages[0] and "-m pip install ipykernel" in messages[0]
    manager.require_ipykernel = False
    assert "env-managed-bare" in manager.find_kernel_specs()


def test_scan_problems_are_logged_once(
    managed: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(5):
        make_sif(managed / f"image-{n}.sif")
    manager = manager_for(managed, home, max_entries=3, log=logging.getLogger("envkernels-test"))
    with caplog.at_level(logging.WARNING, logger="envkernels-test"):
        for _ in range(3):
            assert len(manager.find_kernel_specs()) == 1 + 3
    assert len(caplog.records) == 1 and "max_entries" in caplog.records[0].getMessage()


def test_the_allow_list_and_installed_kernels_take_precedence(
    managed: Path, home: Path, tmp_path: Path
) -> None:
    make_sif(managed / "a.sif")
    make_sif(managed / "b.sif")
    manager = manager_for(managed, home, allowed_kernelspecs={"env-managed-a.sif"})
    assert set(manager.find_kernel_specs()) == {"env-managed-a.sif"}
    assert set(manager.get_all_specs()) == {"env-managed-a.sif"}
    with pytest.raises(NoSuchKernel):
        manager.get_kernel_spec("env-managed-b.sif")

    installed = tmp_path / "kernels" / "env-managed-a.sif"
    installed.mkdir(parents=True)
    (installed / "kernel.json").write_text(
        '{"argv": ["true", "{connection_file}"], "display_name": "Installed", "language": "x"}'
    )
    manager = manager_for(managed, home)
    manager.kernel_dirs = [str(tmp_path / "kernels")]
    assert manager.find_kernel_specs()["env-managed-a.sif"] == str(installed)
    assert manager.get_kernel_spec("env-managed-a.sif").display_name == "Installed"
    every = manager.get_all_specs()
    assert every["env-managed-a.sif"]["spec"]["display_name"] == "Installed"
    assert every["env-managed-b.sif"]["spec"]["display_name"] == "Apptainer: b.sif"
    assert manager.get_kernel_spec("env-managed-b.sif").display_name == "Apptainer: b.sif"


def test_a_scan_is_reused_until_the_refresh_interval_passes(managed: Path, home: Path) -> None:
    make_sif(managed / "first.sif")
    manager = manager_for(managed, home, refresh_interval=3600.0)
    assert "env-managed-first.sif" in manager.find_kernel_specs()
    make_sif(managed / "second.sif")
    assert "env-managed-second.sif" not in manager.find_kernel_specs()
    with pytest.raises(NoSuchKernel):
        manager.get_kernel_spec("env-managed-second.sif")

    manager.refresh_interval = 0.2
    deadline = time.monotonic() + 10
    while "env-managed-second.sif" not in manager.find_kernel_specs():
        assert time.monotonic() < deadline, "the new image never appeared"
        time.sleep(0.05)


def test_the_managed_area_follows_the_spawners_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert EnvironmentKernelSpecManager().managed_areas == {"managed": "/envs"}
    monkeypatch.setenv(ENVIRONMENTS_DIR_VARIABLE, str(tmp_path))
    assert EnvironmentKernelSpecManager().managed_areas == {"managed": str(tmp_path)}
    assert EnvironmentKernelSpecManager().user_areas == {"mine": "~/envs"}


@pytest.mark.parametrize(
    "settings",
    [
        {"managed_areas": {"Managed": "/envs"}},
        {"managed_areas": {"my-envs": "/envs"}},
        {"managed_areas": {"managed": ""}},
        {"user_areas": {"managed": "~/envs"}},
        {"name_prefix": "Env "},
    ],
)
def test_bad_settings_are_refused_with_a_reason(settings: dict[str, Any]) -> None:
    with pytest.raises(TraitError, match=r"tag|folder|name_prefix"):
        EnvironmentKernelSpecManager(**settings)


def test_other_area_tags_show_in_the_names(tmp_path: Path, home: Path) -> None:
    make_sif(tmp_path / "cvmfs" / "geant4.sif")
    make_venv(tmp_path / "cvmfs" / "lcg-105", ipykernel=True)
    manager = EnvironmentKernelSpecManager(
        managed_areas={"cvmfs": str(tmp_path / "cvmfs")}, user_areas={}, kernel_dirs=[]
    )
    shown = {n: manager.get_kernel_spec(n).display_name for n in manager.find_kernel_specs()}
    assert shown["env-cvmfs-geant4.sif"] == "Apptainer (cvmfs): geant4.sif"
    assert shown["env-cvmfs-lcg-105"] == "Python (managed, cvmfs: lcg-105)"


def test_a_discovered_venv_kernel_runs_code(managed: Path, home: Path) -> None:
    env = make_venv(managed / "torch-2.3", ipykernel=True)
    manager = manager_for(managed, home)
    prefix, first_on_path, virtual_env, two = run_code(
        manager,
        "env-managed-torch-2.3",
        "import os, sys; (sys.prefix, os.environ['PATH'].split(':')[0], "
        "os.environ['VIRTUAL_ENV'], 1 + 1)",
    )
    assert (prefix, first_on_path, virtual_env, two) == (
        str(env),
        str(env / "bin"),
        str(env),
        2,
    )


def test_an_apptainer_kernel_starts_through_apptainer_exec(
    managed: Path, home: Path, apptainer_stub: Path
) -> None:
    image = make_sif(managed / "root-6.30.sif")
    manager = manager_for(managed, home, apptainer_python=sys.executable)
    assert run_code(manager, "env-managed-root-6.30.sif", "1 + 1") == 2
    (call,) = recorded_calls(apptainer_stub)
    assert call[:2] == ["exec", "--nv"]
    assert call[-6:-1] == [str(image), sys.executable, "-m", "ipykernel_launcher", "-f"]
    assert call[-1].endswith(".json")
