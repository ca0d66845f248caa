"""Finding environments: the three kinds, ipykernel detection, and the bounds of a scan."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from envkernel_builders import make_conda_prefix, make_sif, make_venv, site_packages

from aiinfn_hub.envkernels.discovery import Area, ScanLimits, scan_area
from aiinfn_hub.envkernels.site_packages import has_ipykernel

ROOT = Path(__file__).resolve().parents[2]


def found(area_root: Path, **limits: int) -> dict[str, tuple[str, bool]]:
    """relative path -> (kind, has ipykernel) of what a scan finds."""
    result = scan_area(Area("managed", area_root, True), ScanLimits(**limits))
    return {e.relative_path: (e.kind, e.has_ipykernel) for e in result.environments}


def test_the_three_kinds_are_found(managed: Path) -> None:
    make_venv(managed / "torch-2.3", ipykernel=True)
    make_venv(managed / "bare", ipykernel=False)
    make_conda_prefix(managed / "root-6.30", ipykernel=True)
    make_sif(managed / "images" / "lhcb.sif")
    (managed / "notes.txt").write_text("not an environment")
    (managed / "empty-folder").mkdir()
    assert found(managed) == {
        "torch-2.3": ("venv", True),
        "bare": ("venv", False),
        "root-6.30": ("conda", True),
        "images/lhcb.sif": ("apptainer", True),
    }


def test_a_missing_area_offers_nothing_without_complaint(tmp_path: Path) -> None:
    result = scan_area(Area("managed", tmp_path / "not-mounted", True), ScanLimits())
    assert result.environments == [] and result.problems == []


def test_a_folder_needs_bin_python_to_be_an_environment(managed: Path) -> None:
    (managed / "half" / "conda-meta").mkdir(parents=True)
    (managed / "cfg-only").mkdir()
    (managed / "cfg-only" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert found(managed) == {}


def test_system_site_packages_count_for_ipykernel(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "bin").mkdir(parents=True)
    kernel = base / "lib" / "python3.12" / "site-packages" / "ipykernel"
    kernel.mkdir(parents=True)
    (kernel / "__init__.py").write_text("")
    env = make_venv(tmp_path / "env", ipykernel=False)
    config = env / "pyvenv.cfg"
    assert not has_ipykernel(env)
    config.write_text(
        f"home = {base / 'bin'}\ninclude-system-site-packages = true\nversion = 3.12.4\n"
    )
    assert has_ipykernel(env)
    config.write_text(f"home = {base / 'bin'}\ninclude-system-site-packages = false\n")
    assert not has_ipykernel(env)


def test_a_real_system_site_packages_venv_follows_its_base(tmp_path: Path) -> None:
    env = tmp_path / "sys-env"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(env)],
        check=True,
        timeout=60,
    )
    base_has_it = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import ipykernel"], capture_output=True, timeout=60
    )
    assert has_ipykernel(env) == (base_has_it.returncode == 0)


def test_pth_import_lines_are_not_folders(tmp_path: Path) -> None:
    env = make_venv(tmp_path / "env", ipykernel=False)
    (site_packages(env) / "x.pth").write_text(f"import os; os.getcwd()\n# {tmp_path}\n\n")
    assert not has_ipykernel(env)


def test_depth_is_bounded(managed: Path) -> None:
    make_sif(managed / "one.sif")
    make_sif(managed / "a" / "two.sif")
    make_sif(managed / "a" / "b" / "three.sif")
    assert set(found(managed, max_depth=1)) == {"one.sif"}
    assert set(found(managed, max_depth=2)) == {"one.sif", "a/two.sif"}
    assert set(found(managed, max_depth=3)) == {"one.sif", "a/two.sif", "a/b/three.sif"}


def test_the_number_of_entries_is_bounded_and_reported(managed: Path) -> None:
    for n in range(30):
        (managed / f"folder-{n:02}").mkdir()
    make_sif(managed / "near.sif")
    make_sif(managed / "folder-29" / "far.sif")
    result = scan_area(Area("managed", managed, True), ScanLimits(max_depth=2, max_entries=31))
    assert [e.relative_path for e in result.environments] == ["near.sif"]
    assert len(result.problems) == 1 and "max_entries" in result.problems[0]
    complete = scan_area(Area("managed", managed, True), ScanLimits(max_depth=2, max_entries=32))
    assert [e.relative_path for e in complete.environments] == ["near.sif", "folder-29/far.sif"]
    assert complete.problems == []


def test_the_scan_does_not_go_into_environments_or_hidden_folders(managed: Path) -> None:
    env = make_conda_prefix(managed / "base", ipykernel=True)
    make_conda_prefix(env / "envs" / "inner", ipykernel=True)
    make_sif(managed / ".cache" / "hidden.sif")
    assert set(found(managed, max_depth=4)) == {"base"}


def test_links_out_of_the_area_are_skipped(managed: Path, tmp_path: Path) -> None:
    outside = make_venv(tmp_path / "outside" / "env", ipykernel=True)
    make_sif(tmp_path / "outside" / "image.sif")
    (managed / "escape").symlink_to(outside)
    (managed / "escape.sif").symlink_to(tmp_path / "outside" / "image.sif")
    (managed / "up").symlink_to(tmp_path / "outside")
    (managed / "dangling").symlink_to(tmp_path / "nowhere")
    assert found(managed) == {}


def test_links_inside_the_area_are_followed_and_loops_end(managed: Path) -> None:
    make_venv(managed / "torch-2.3", ipykernel=True)
    (managed / "torch-latest").symlink_to(managed / "torch-2.3")
    (managed / "group").mkdir()
    (managed / "group" / "loop").symlink_to(managed)
    assert set(found(managed, max_depth=5)) == {
        "torch-2.3",
        "torch-latest",
        "group/loop/torch-2.3",
        "group/loop/torch-latest",
        "group/loop/group/loop/torch-2.3",
        "group/loop/group/loop/torch-latest",
    }


def test_an_area_that_is_a_link_is_scanned(managed: Path, tmp_path: Path) -> None:
    make_sif(managed / "image.sif")
    (tmp_path / "link-to-envs").symlink_to(managed)
    assert set(found(tmp_path / "link-to-envs")) == {"image.sif"}


SCAN_AS_ANOTHER_USER = """
import json, sys
from pathlib import Path
from aiinfn_hub.envkernels.discovery import Area, ScanLimits, scan_area
result = scan_area(Area("mine", Path(sys.argv[1]), False), ScanLimits())
print(json.dumps([[e.relative_path for e in result.environments], result.problems]))
"""


def test_an_unreadable_folder_is_reported_and_the_scan_goes_on() -> None:
    # root reads every folder: as root, the scan runs as nobody with Debian's python3,
    # which imports only the standard library through our discovery module
    # (pytest's tmp_path is private to root, so the area is a folder of its own in /tmp)
    area = Path(tempfile.mkdtemp(prefix="envkernels-"))
    try:
        make_sif(area / "a-readable" / "ok.sif")
        make_sif(area / "b-private" / "secret.sif")
        make_sif(area / "c-after.sif")
        for path in [area, *area.rglob("*")]:
            path.chmod(0o755)
        (area / "b-private").chmod(0o000)
        if os.geteuid() != 0:
            result = scan_area(Area("mine", area, False), ScanLimits())
            paths = [e.relative_path for e in result.environments]
            problems = result.problems
        else:
            python = shutil.which("python3", path="/usr/bin")
            if python is None:
                pytest.skip("no /usr/bin/python3 to run the scan as another user")
            ran = subprocess.run(
                [python, "-c", SCAN_AS_ANOTHER_USER, str(area)],
                user=65534,
                group=65534,
                env={"PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert ran.returncode == 0, ran.stderr
            paths, problems = json.loads(ran.stdout)
        assert paths == ["c-after.sif", "a-readable/ok.sif"]
        assert len(problems) == 1
        assert "b-private" in problems[0] and "ermission denied" in problems[0]
    finally:
        (area / "b-private").chmod(0o755)
        shutil.rmtree(area)
