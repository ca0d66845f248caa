"""The storage-init script, run with the real shell on a folder standing for the export."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from aiinfn_hub.platform.storage.scripts import script

ROOT = os.geteuid() == 0


def run(*specs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script("storage-init.sh"), "storage-init", *specs],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def ids() -> tuple[int, int]:
    return (1000, 100) if ROOT else (os.geteuid(), os.getegid())


def test_creates_home_and_project_with_owner_and_mode(tmp_path: Path) -> None:
    uid, gid = ids()
    result = run(
        f"{tmp_path}/homes:0:0:0755" if ROOT else f"{tmp_path}/homes:{uid}:{gid}:0755",
        f"{tmp_path}/homes/alice:{uid}:{gid}:0700",
        f"{tmp_path}/projects:{uid}:{gid}:0755",
        f"{tmp_path}/projects/cms:{uid}:{gid}:2770",
    )
    assert result.returncode == 0, result.stderr
    home = (tmp_path / "homes" / "alice").stat()
    assert (home.st_mode & 0o7777, home.st_uid, home.st_gid) == (0o700, uid, gid)
    project = (tmp_path / "projects" / "cms").stat()
    assert project.st_mode & 0o7777 == 0o2770
    assert "created" in result.stdout


def test_existing_folders_and_their_data_are_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "homes" / "alice"
    home.mkdir(parents=True)
    home.chmod(0o750)
    (home / "thesis.tex").write_text("precious")
    uid, gid = ids()
    result = run(f"{tmp_path}/homes:{uid}:{gid}:0755", f"{home}:{uid}:{gid}:0700")
    assert result.returncode == 0, result.stderr
    assert home.stat().st_mode & 0o7777 == 0o750
    assert (home / "thesis.tex").read_text() == "precious"
    assert "left as it is" in result.stdout


def test_a_planted_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    (tmp_path / "homes").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    victim.chmod(0o755)
    (tmp_path / "homes" / "alice").symlink_to(victim)
    uid, gid = ids()
    result = run(f"{tmp_path}/homes/alice:{uid}:{gid}:0700")
    assert result.returncode != 0
    assert "is a symbolic link: refusing to follow it" in result.stderr
    assert victim.stat().st_mode & 0o7777 == 0o755  # untouched


def test_a_symlinked_parent_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real-homes"
    real.mkdir()
    (tmp_path / "homes").symlink_to(real)
    uid, gid = ids()
    result = run(f"{tmp_path}/homes/alice:{uid}:{gid}:0700")
    assert result.returncode != 0 and "homes is a symbolic link" in result.stderr
    assert not (real / "alice").exists()


def test_a_file_in_place_of_a_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "homes").mkdir()
    (tmp_path / "homes" / "alice").write_text("")
    uid, gid = ids()
    result = run(f"{tmp_path}/homes/alice:{uid}:{gid}:0700")
    assert result.returncode != 0 and "exists but is not a folder" in result.stderr


@pytest.mark.skipif(not ROOT, reason="changing owners needs root (CI runs as root)")
def test_as_root_the_folder_gets_the_users_ids(tmp_path: Path) -> None:
    result = run(f"{tmp_path}/homes:0:0:0755", f"{tmp_path}/homes/alice:1000:100:0700")
    assert result.returncode == 0, result.stderr
    stat = (tmp_path / "homes" / "alice").stat()
    assert (stat.st_uid, stat.st_gid) == (1000, 100)


@pytest.mark.skipif(not ROOT, reason="needs root to own a folder as another user id")
def test_a_home_owned_by_another_id_is_refused_and_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "homes" / "alice"
    home.mkdir(parents=True)
    (home / "thesis.tex").write_text("bob's")
    os.chown(home, 100007, 100)
    result = run(f"{tmp_path}/homes:0:0:0755", f"{home}:100042:100:0700:owned")
    assert result.returncode == 1
    assert "belongs to user id 100007" in result.stderr and "runs as 100042" in result.stderr
    assert home.stat().st_uid == 100007 and (home / "thesis.tex").read_text() == "bob's"


def test_a_home_owned_by_its_user_passes_the_owner_check(tmp_path: Path) -> None:
    uid, gid = ids()
    home = tmp_path / "homes" / "alice"
    home.mkdir(parents=True)
    os.chown(home, uid, gid)
    result = run(f"{home}:{uid}:{gid}:0700:owned")
    assert result.returncode == 0, result.stderr
    assert "left as it is" in result.stdout
