"""``aiinfn-envs``: cloning a managed environment into the home, its kernel, and refusals."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from envkernel_builders import make_conda_prefix, make_sif, make_venv, manager_for, run_code

from aiinfn_hub.envkernels.cli import main
from aiinfn_hub.envkernels.clone import CloneError, clone_target
from aiinfn_hub.envkernels.spec_manager import ENVIRONMENTS_DIR_VARIABLE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def areas(managed: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI sees ``managed`` as /envs and ``<home>/envs`` as ~/envs; no Jupyter config."""
    monkeypatch.setenv(ENVIRONMENTS_DIR_VARIABLE, str(managed))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))


def fake_conda(folder: Path, record: Path, exit_code: int = 0) -> None:
    """A ``conda`` on PATH that records its argv and makes the prefix it is asked for."""
    folder.mkdir(exist_ok=True)
    script = folder / "conda"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "prefix = sys.argv[sys.argv.index('--prefix') + 1]\n"
        "os.makedirs(os.path.join(prefix, 'conda-meta'))\n"
        "os.makedirs(os.path.join(prefix, 'bin'))\n"
        f"os.symlink({sys.executable!r}, os.path.join(prefix, 'bin', 'python'))\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)


def test_a_venv_clone_gets_its_own_working_kernel(
    managed: Path, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_venv(managed / "torch-2.3", ipykernel=True)
    tool = source / "bin" / "hep-tool"
    tool.write_text(f"#!{source}/bin/python\nprint('hello')\n")
    (tmp_path / "shared-data").mkdir()
    (source / "bin" / "data").symlink_to(Path("..", "..", "..", "shared-data"))
    for path in [source, *source.rglob("*")]:
        if not path.is_symlink():
            path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)

    assert main(["clone", "torch-2.3"]) == 0
    clone = home / "envs" / "torch-2.3"
    out = capsys.readouterr().out
    assert f"cloned {source} into {clone}" in out
    assert '"Python (my clone: torch-2.3)" (env-mine-torch-2.3)' in out

    assert tool.read_text().startswith(f"#!{source}/bin/python\n")  # the source is untouched
    assert (clone / "bin" / "hep-tool").read_text().startswith(f"#!{clone}/bin/python\n")
    activate = (clone / "bin" / "activate").read_text()
    assert str(clone) in activate and str(source) not in activate
    assert (clone / "bin" / "data").resolve() == (tmp_path / "shared-data")
    assert [p for p in [clone, *clone.rglob("*")] if not p.lstat().st_mode & stat.S_IWUSR] == []

    manager = manager_for(managed, home)
    specs = manager.find_kernel_specs()
    assert {"env-managed-torch-2.3", "env-mine-torch-2.3"} <= specs.keys()
    assert manager.get_kernel_spec("env-mine-torch-2.3").display_name == (
        "Python (my clone: torch-2.3)"
    )
    assert run_code(manager, "env-mine-torch-2.3", "import sys; sys.prefix") == str(clone)


def test_a_conda_environment_is_cloned_by_conda(
    managed: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_conda_prefix(managed / "root-6.30", ipykernel=True)
    record = tmp_path / "conda-argv.json"
    fake_conda(tmp_path / "bin", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert main(["clone", "root-6.30", "--name", "my-root"]) == 0
    target = home / "envs" / "my-root"
    assert json.loads(record.read_text()) == [
        "create",
        "--yes",
        "--prefix",
        str(target),
        "--clone",
        str(source),
    ]
    assert (target / "conda-meta").is_dir()


def test_a_failed_conda_clone_leaves_nothing_behind(
    managed: Path,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_conda_prefix(managed / "root-6.30", ipykernel=True)
    fake_conda(tmp_path / "bin", tmp_path / "argv.json", exit_code=3)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert main(["clone", "root-6.30"]) == 1
    err = capsys.readouterr().err
    assert "exit code 3" in err and "run the clone again with --copy" in err
    assert not (home / "envs" / "root-6.30").exists()


def test_without_conda_a_conda_environment_is_copied_with_a_warning(
    managed: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_conda_prefix(managed / "root-6.30", ipykernel=True)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert main(["clone", str(managed / "root-6.30")]) == 0
    out = capsys.readouterr().out
    assert "copied, not cloned by conda" in out and "Python (my clone: root-6.30)" in out
    assert (home / "envs" / "root-6.30" / "conda-meta" / "history").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["clone", "nothing"], "no managed environment named 'nothing'"),
        (["clone", "root.sif"], "is an Apptainer image"),
        (["clone", "plain-folder"], "neither a conda environment"),
        (["clone", "torch", "--name", "../outside"], "not a usable name"),
        (["clone", "torch", "--name", ".hidden"], "not a usable name"),
        (["clone", "torch", "--name", "taken"], "already exists"),
        (["clone", "torch", "--name", "dangling"], "already exists"),
    ],
)
def test_refusals_say_what_to_do(
    managed: Path,
    home: Path,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_venv(managed / "torch", ipykernel=True)
    make_sif(managed / "root.sif")
    (managed / "plain-folder").mkdir()
    (home / "envs" / "taken").mkdir(parents=True)
    (home / "envs" / "dangling").symlink_to(home / "nowhere")
    before = sorted(p.name for p in (home / "envs").iterdir())
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in (home / "envs").iterdir()) == before


def test_clones_never_go_outside_the_home(home: Path, tmp_path: Path) -> None:
    with pytest.raises(CloneError, match="outside your home"):
        clone_target("x", tmp_path / "elsewhere", home)
    (home / "envs").symlink_to(tmp_path)
    with pytest.raises(CloneError, match="outside your home"):
        clone_target("x", Path("~/envs"), home)
    assert clone_target("x", Path("~/inside"), home) == home / "inside" / "x"


def test_list_shows_kernels_and_what_is_left_out(
    managed: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_venv(managed / "torch-2.3", ipykernel=True)
    make_venv(home / "envs" / "scratchpad", ipykernel=False)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "Python (managed: torch-2.3)\n    kernel env-managed-torch-2.3, venv" in out
    assert "Python (my clone: scratchpad)  (not offered: no ipykernel)" in out


def test_the_command_reads_the_servers_json_config(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other-envs"
    make_sif(other / "geant4.sif")
    config = tmp_path / "jupyter-config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"EnvironmentKernelSpecManager": {"managed_areas": {"cvmfs": str(other)}}})
    )
    assert main(["list"]) == 0
    assert (
        "Apptainer (cvmfs): geant4.sif\n    kernel env-cvmfs-geant4.sif" in capsys.readouterr().out
    )


def test_copy_is_forced_with_the_copy_option(
    managed: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_conda_prefix(managed / "root-6.30", ipykernel=True)
    record = tmp_path / "conda-argv.json"
    fake_conda(tmp_path / "bin", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert main(["clone", "root-6.30", "--copy"]) == 0
    assert not record.exists()
    assert (home / "envs" / "root-6.30" / "conda-meta" / "history").is_file()


CLONE_AS_ANOTHER_USER = """
import sys
from pathlib import Path
from aiinfn_hub.envkernels.clone import CloneError, clone_environment
try:
    clone_environment(Path(sys.argv[1]), Path(sys.argv[2]), conda=None)
except CloneError as error:
    print(error)
"""


def test_a_copy_that_cannot_read_everything_keeps_nothing() -> None:
    # root reads every file: as root, the clone runs as nobody with Debian's python3 (the clone
    # module needs only the standard library)
    python = shutil.which("python3", path="/usr/bin")
    if os.geteuid() != 0 or python is None:
        pytest.skip("needs root, to run the clone as another user, and /usr/bin/python3")
    work = Path(tempfile.mkdtemp(prefix="envkernels-clone-"))
    try:
        source = work / "env"
        (source / "bin").mkdir(parents=True)
        (source / "pyvenv.cfg").write_text("home = /usr/bin\n")
        (source / "bin" / "python").symlink_to(python)
        (source / "secret.txt").write_text("maintainers only")
        for path in [work, source, source / "bin", source / "pyvenv.cfg"]:
            path.chmod(0o755)
        work.chmod(0o777)
        (source / "secret.txt").chmod(0o600)
        ran = subprocess.run(
            [python, "-c", CLONE_AS_ANOTHER_USER, str(source), str(work / "clone")],
            user=65534,
            group=65534,
            env={"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        assert "1 files failed, e.g." in ran.stdout and "secret.txt" in ran.stdout
        assert "nothing was kept" in ran.stdout
        assert not (work / "clone").exists()
    finally:
        shutil.rmtree(work)
