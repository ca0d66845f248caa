"""``check-config`` warns when the jobs' pool lends no accelerator: every job asking for a GPU
would stay queued in Kueue (quota 0) without telling its user why."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import yaml

from aiinfn_hub.bunshin.kueue import kueue_objects
from aiinfn_hub.config import load_platform_config
from aiinfn_hub.config_check import check_config_command, jobs_quota_warnings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "platform.yaml"


def _example(**jobs: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["jobs"] = {k: v for k, v in {**data["jobs"], **jobs}.items() if v is not None}
    return data


def _check(tmp_path: Path, data: dict[str, Any]) -> tuple[int, str, str]:
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out, err = StringIO(), StringIO()
    return check_config_command(str(path), out=out, err=err), out.getvalue(), err.getvalue()


def pool_quotas(path: Path) -> dict[str, str]:
    """Flavour -> accelerator quota of the pool ClusterQueue ``render-kueue`` makes."""
    config = load_platform_config(path)
    (pool,) = [o for o in kueue_objects(config) if o["metadata"]["name"] == config.jobs.pool_queue]
    return {
        flavor["name"]: flavor["resources"][0]["nominalQuota"]
        for group in pool["spec"]["resourceGroups"][1:]
        for flavor in group["flavors"]
        if not flavor["name"].startswith("interlink")
    }


def test_an_empty_pool_is_warned_about_not_refused(tmp_path: Path) -> None:
    code, out, err = _check(tmp_path, _example(poolAccelerators=None))
    assert code == 0 and out.startswith(f"{tmp_path / 'platform.yaml'}: valid\n")
    (line,) = err.splitlines()
    assert line.startswith("warning: jobs.poolAccelerators is empty: ")
    assert "ClusterQueue pool" in line and "stays queued" in line
    # what the warning says is what render-kueue makes of it: every model at 0
    assert set(pool_quotas(tmp_path / "platform.yaml").values()) == {"0"}


def test_zero_units_everywhere_is_empty_too(tmp_path: Path) -> None:
    _, _, err = _check(tmp_path, _example(poolAccelerators={"t4": 0}, poolQueue="jobs-pool"))
    (line,) = err.splitlines()
    assert "poolAccelerators is empty" in line and "ClusterQueue jobs-pool" in line


def test_a_model_not_in_the_catalogue_is_warned_about(tmp_path: Path) -> None:
    code, _, err = _check(tmp_path, _example(poolAccelerators={"t4": 2, "h100": 8}))
    assert code == 0
    (line,) = err.splitlines()
    assert line.startswith("warning: jobs.poolAccelerators names h100, not in the accelerators")


def test_the_example_lends_every_model_and_is_quiet(tmp_path: Path) -> None:
    config = load_platform_config(EXAMPLE)
    assert jobs_quota_warnings(config) == []
    assert "0" not in pool_quotas(EXAMPLE).values()


def test_no_accelerators_no_warning(tmp_path: Path) -> None:
    data = _example(poolAccelerators=None)
    data["accelerators"] = []
    for project in data["projects"].values():
        project.get("limits", {}).pop("accelerators", None)
    code, _, err = _check(tmp_path, data)
    assert code == 0, err
    assert "poolAccelerators" not in err


def test_the_command_prints_the_warning_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(_example(poolAccelerators=None)))
    done = subprocess.run(
        [sys.executable, "-m", "aiinfn_hub.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "warning: jobs.poolAccelerators is empty" in done.stderr
    assert "warning" not in done.stdout
