"""PlatformConfig: strict, camelCase, and errors that name the bad key as written in the YAML."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import yaml

from aiinfn_hub.config import (
    PlatformConfig,
    PlatformConfigError,
    load_platform_config,
    parse_memory,
)
from aiinfn_hub.config_check import check_config_command

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "platform.yaml"
GPU = {
    "name": "t4",
    "description": "T4",
    "kind": "gpu",
    "resource": "nvidia.com/gpu",
    "memoryGiB": 16,
}


def _errors(data: object) -> list[str]:
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config(yaml.safe_dump(data) + "\n")
    return exc.value.lines


def test_the_example_describes_the_papers_servers() -> None:
    config = load_platform_config(EXAMPLE)
    kinds = {a.name: a.kind for a in config.accelerators}
    assert {"t4", "rtx5000", "a100", "a30"} <= {n for n, k in kinds.items() if k == "gpu"}
    assert {n for n, k in kinds.items() if k == "mig"} == {"a100-1g-10gb", "a100-3g-40gb"}
    assert {n for n, k in kinds.items() if k == "fpga"} == {"u50", "u250", "v70"}
    assert config.accelerator("a100") is not None
    assert config.accelerator("a100").memory_gib == 80  # type: ignore[union-attr]
    default = config.default_image()
    assert default is not None and default.name == "base"
    assert config.projects["cms"].limits.max_gpus == 1


def test_example_node_selectors_match_the_example_cluster() -> None:
    config = load_platform_config(EXAMPLE)
    cluster = yaml.safe_load((EXAMPLE.parent / "cluster.yaml").read_text())
    for accelerator in config.accelerators:
        carriers = [
            node["name"]
            for node in cluster["nodes"]
            if accelerator.resource in node["capacity"]
            and all(
                node.get("labels", {}).get(k) == v for k, v in accelerator.node_selector.items()
            )
        ]
        assert carriers, f"no example node carries {accelerator.name}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"resource": "gpu"},
            "accelerators[0].resource: expected an extended resource name like "
            "\"nvidia.com/gpu\" (got 'gpu')",
        ),
        ({"resource": "kubernetes.io/gpu"}, "accelerators[0].resource: expected an extended"),
        ({"name": "T4"}, "accelerators[0].name: expected a slug"),
        ({"kind": "tpu"}, "accelerators[0].kind: expected 'gpu', 'mig' or 'fpga'"),
        ({"memoryGiB": 0}, "accelerators[0].memoryGiB: Input should be greater than 0"),
        (
            {"nodeSelector": {"bad key!": "x"}},
            "accelerators[0].nodeSelector: expected a Kubernetes label key",
        ),
        (
            {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
            "accelerators[0].tolerations[0]: value must be empty when operator is Exists",
        ),
        ({"gpus": 2}, "accelerators[0].gpus: unknown key"),
    ],
)
def test_accelerator_errors_name_the_bad_key(change: dict[str, object], expected: str) -> None:
    lines = _errors({"accelerators": [{**GPU, **change}]})
    assert any(line.startswith(expected) for line in lines), lines


def test_missing_keys_and_unknown_keys_at_depth() -> None:
    lines = _errors(
        {
            "accelerators": [{"name": "x"}],
            "projects": {"cms": {"displayName": "CMS", "limits": {"maxGPUs": 1}}},
            "storage": {},
        }
    )
    assert "accelerators[0].description: required key is missing" in lines
    assert (
        "projects.cms.limits.maxGPUs: unknown key (check its spelling and the documented keys)"
        in lines
    )
    assert any(line.startswith("storage: unknown key") for line in lines)


def test_cross_references_are_checked() -> None:
    lines = _errors(
        {
            "accelerators": [GPU, GPU],
            "images": [{"name": "x", "image": "a:1", "description": "d", "groups": ["nope"]}],
            "projects": {"cms": {"displayName": "CMS", "limits": {"accelerators": ["a100"]}}},
        }
    )
    assert "accelerators: name 't4' is used 2 times" in lines
    assert "images[0].groups: unknown project 'nope' (known: ['cms'])" in lines
    assert "projects.cms.limits.accelerators: unknown accelerator 'a100' (known: ['t4'])" in lines


def test_resource_defaults_must_be_among_the_choices() -> None:
    lines = _errors({"resources": {"cpuChoices": [1, 2], "defaultCpu": 3}})
    assert lines == ["resources: defaultCpu 3.0 must be one of cpuChoices [1.0, 2.0]"]
    lines = _errors({"resources": {"memoryChoices": ["4Gi"], "defaultMemory": "4G"}})
    assert "defaultMemory 4G must be one of memoryChoices" in lines[0]
    ok = PlatformConfig.model_validate(
        {"resources": {"memoryChoices": ["4Gi", "4096Mi"], "defaultMemory": "4096Mi"}}
    )
    assert ok.resources.default_memory == "4096Mi"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1Gi", 2**30),
        ("512Mi", 2**29),
        ("1.5Gi", 3 * 2**29),
        ("1G", 10**9),
        ("2k", 2000),
        ("1073741824", 2**30),
        (1024, 1024),
    ],
)
def test_memory_quantities(text: str | int, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("junk", ["", "1 Gi", "Gi", "1gb", "-1Gi", "1e3Gi"])
def test_memory_junk_is_rejected(junk: str) -> None:
    with pytest.raises(ValueError, match="expected a memory size"):
        parse_memory(junk)


def test_snake_case_works_from_python() -> None:
    config = PlatformConfig.model_validate(
        {"accelerators": [{**GPU, "node_selector": {"a": "b"}, "preference_weight": 3}]}
    )
    assert config.accelerators[0].preference_weight == 3
    assert config.model_dump(by_alias=True)["accelerators"][0]["nodeSelector"] == {"a": "b"}


def test_yaml_errors_and_empty_documents() -> None:
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config("accelerators: [\n  - name: x\n  bad")
    assert exc.value.lines[0].startswith("line ")
    assert "not valid YAML" in exc.value.lines[0]
    with pytest.raises(PlatformConfigError, match="the document is empty"):
        load_platform_config("# nothing\n")
    with pytest.raises(PlatformConfigError, match="expected a mapping"):
        load_platform_config("- a\n- b\n")


def test_check_config_command(tmp_path: Path) -> None:
    out, err = StringIO(), StringIO()
    assert check_config_command(str(EXAMPLE), out=out, err=err) == 0
    assert "valid" in out.getvalue() and "accelerators: 9 (3 fpga, 4 gpu, 2 mig)" in out.getvalue()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"accelerators": [{**GPU, "resource": "gpu"}]}))
    out, err = StringIO(), StringIO()
    assert check_config_command(str(bad), out=out, err=err) == 1
    assert "accelerators[0].resource: expected an extended resource name" in err.getvalue()
    assert out.getvalue() == ""
    assert check_config_command(str(tmp_path / "missing.yaml"), out=out, err=err) == 1
    assert "no such file" in err.getvalue()


def test_check_config_console_script(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "aiinfn_hub.cli", "check-config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and "projects: 5" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("images: [{name: x}]\n")
    failed = subprocess.run(
        [sys.executable, "-m", "aiinfn_hub.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1 and "images[0].image: required key is missing" in failed.stderr
