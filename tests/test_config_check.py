"""``check_config_command``: exit codes and what administrators read on stdout and stderr."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import yaml

from aiinfn_hub.config_check import check_config_command

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "platform.yaml"
EXAMPLE_SUMMARY = (
    "accelerators: 9 (4 gpu, 2 mig, 3 fpga)\n"
    "images: 3 (base (default), cuda-ml (CUDA), qml (CUDA; projects: qml))\n"
    "cpu choices: 1, 2, 4, 8, 16 (default 2)\n"
    "memory choices: 4Gi, 8Gi, 16Gi, 32Gi, 64Gi (default 8Gi)\n"
    "projects: 5 (cms, fpga-lab, lhcb-flashsim, ml-infn, qml)\n"
    "storage: homes and project folders on nfs.aiinfn-storage.svc.cluster.local:/exports, "
    "environments, shared, scratch (nvme-local, 10Gi, 50Gi, 200Gi), cvmfs (3 repositories), "
    "buckets (sidecar)\n"
    "jobs: namespace bunshin, queue {project}, offloading past "
    "virtual-node.interlink/no-schedule with JuiceFS for home, project, environments, shared "
    "and the sites' CVMFS\n"
)
IMAGE = {"name": "base", "image": "harbor.example.org/ai/base:1.0", "description": "Base"}


def _check(path: Path | str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = check_config_command(str(path), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _write(tmp_path: Path, data: object, name: str = "platform.yaml") -> Path:
    file = tmp_path / name
    file.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return file


def test_a_valid_file_prints_its_summary() -> None:
    assert _check(EXAMPLE) == (0, f"{EXAMPLE}: valid\n{EXAMPLE_SUMMARY}", "")


def test_one_error(tmp_path: Path) -> None:
    gpu = {
        "name": "t4",
        "description": "T4",
        "kind": "gpu",
        "resource": "gpu",
        "memoryGiB": 16,
    }
    file = _write(tmp_path, {"accelerators": [gpu], "images": [IMAGE]})
    assert _check(file) == (
        1,
        "",
        f"{file}: 1 error\n"
        '  accelerators[0].resource: expected an extended resource name like "nvidia.com/gpu": '
        "a domain, '/' and a name, not cpu, memory or a kubernetes.io resource (got \"gpu\")\n",
    )


def test_several_errors_are_all_listed(tmp_path: Path) -> None:
    file = _write(
        tmp_path,
        {
            "images": [{**IMAGE, "groups": ["cms"]}],
            "resources": {"cpuChoices": [1, 2], "defaultCpu": 4},
            "project": {},
        },
    )
    code, out, err = _check(file)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{file}: 2 errors",
        "  resources.defaultCpu: expected one of cpuChoices (1, 2) (got 4)",
        '  project: unknown key; did you mean "projects"? (allowed here: accelerators, images, '
        "resources, projects, storage, jobs)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            "the document is empty: expected a mapping with the keys accelerators, images, "
            "resources and projects",
        ),
        (
            "images:\n  - name: [\n",
            "line 3, column 1: not valid YAML: expected the node content, "
            "but found '<stream end>' (while parsing a flow node)",
        ),
        (
            "images: []\nimages: []\n",
            'line 2, column 1: duplicate key "images" (first written at line 1)',
        ),
    ],
)
def test_files_that_are_not_configurations(tmp_path: Path, text: str, message: str) -> None:
    file = _write(tmp_path, text)
    assert _check(file) == (1, "", f"{file}: 1 error\n  {message}\n")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert _check(missing) == (
        1,
        "",
        f"{missing}: 1 error\n  no such file (expected the path of a platform configuration "
        "YAML file)\n",
    )
    assert _check(tmp_path) == (
        1,
        "",
        f"{tmp_path}: 1 error\n  is a directory (expected a platform configuration YAML file)\n",
    )


def test_default_streams_are_the_current_stdout_and_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_config_command(str(EXAMPLE)) == 0
    assert check_config_command(str(tmp_path / "nope.yaml")) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{EXAMPLE}: valid\n{EXAMPLE_SUMMARY}"
    assert captured.err.startswith(f"{tmp_path / 'nope.yaml'}: 1 error\n  no such file")


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    script = (
        "import sys; from aiinfn_hub.config_check import check_config_command; "
        "sys.exit(check_config_command(sys.argv[1]))"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_in_a_fresh_process(tmp_path: Path) -> None:
    ok = _run(EXAMPLE)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, f"{EXAMPLE}: valid\n{EXAMPLE_SUMMARY}", "")
    bad = _write(tmp_path, "images: [{name: x}]\n")
    failed = _run(bad)
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr.splitlines() == [
        f"{bad}: 2 errors",
        "  images[0].image: missing required key (OCI image reference, e.g. "
        "`harbor.cloud.infn.it/ai-infn/cuda-ml:2026.11`; pin a tag or digest so servers do not "
        "change under users.)",
        "  images[0].description: missing required key (What users see on the form, e.g. "
        "`PyTorch and JAX on CUDA 12`.)",
    ]
    missing = _run(tmp_path / "missing.yaml")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "no such file" in missing.stderr


def test_the_console_command(tmp_path: Path) -> None:
    """``aiinfn-hub check-config FILE`` (wired in cli.py) gives the same exit codes."""
    command = [sys.executable, "-m", "aiinfn_hub.cli", "check-config"]
    ok = subprocess.run([*command, str(EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout == f"{EXAMPLE}: valid\n{EXAMPLE_SUMMARY}"
    bad = _write(tmp_path, {"images": [{**IMAGE, "gpu": "yes"}]})
    failed = subprocess.run([*command, str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert '  images[0].gpu: expected true or false (got "yes")' in failed.stderr.splitlines()


def test_risky_choices_are_warned_about_but_still_valid(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["storage"]["buckets"].pop("tokenAudience")
    data["storage"]["home"] = {"uidBase": None, "uid": 1000}
    data["jobs"]["offload"]["juicefs"]["metadataUrl"] = "rediss://meta.example.org:6379/1"
    code, out, err = _check(_write(tmp_path, data))
    assert code == 0 and out.endswith(EXAMPLE_SUMMARY)
    warnings = err.splitlines()
    assert len(warnings) == 3 and all(w.startswith("warning: ") for w in warnings)
    assert "tokenAudience is empty: each user's whole login token reaches" in warnings[0]
    assert "uidBase is empty: every user runs as the same id (1000)" in warnings[1]
    assert "metadataUrl has no {project}" in warnings[2]
