"""helm-values/manifests/30-kueue.yaml is what `aiinfn-hub render-kueue` makes of the platform
document the hub is deployed with (the one in helm-values/values.yaml), and
examples/platform.yaml, read by the tests and the local platform, is that same document but
for the differences listed here (so neither drifts from the other silently)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "helm-values" / "values.yaml"
KUEUE_FILE = ROOT / "helm-values" / "manifests" / "30-kueue.yaml"
EXAMPLE = ROOT / "examples" / "platform.yaml"
# key path -> why the deployed document and the example differ there
MEANT_TO_DIFFER = {
    ("storage", "nfs", "server"): "a placeholder the operator sets in the values; the example "
    "names the emulated platform's server (tests and golden files read it)",
}


def values_platform(values_file: Path) -> dict[str, Any]:
    """The platform document a values file gives the hub: the `hub.extraFiles` entry mounted at
    `custom.aiinfn.platformConfigFile`."""
    values = yaml.safe_load(values_file.read_text())
    path = values["custom"]["aiinfn"]["platformConfigFile"]
    files = values["hub"]["extraFiles"]
    (data,) = [f["data"] for f in files.values() if f["mountPath"] == path]
    document: dict[str, Any] = data
    return document


def render_kueue(document: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    done = subprocess.run(
        [sys.executable, "-m", "aiinfn_hub.cli", "render-kueue", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def differences(a: Any, b: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths where two documents differ (a list differs as a whole)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            p for key in sorted({*a, *b}) for p in differences(a.get(key), b.get(key), (*path, key))
        ]
    return [] if a == b else [path]


def test_the_kueue_file_is_rendered_from_the_deployed_document(tmp_path: Path) -> None:
    lines = KUEUE_FILE.read_text().splitlines(keepends=True)
    header = 0
    while header < len(lines) and lines[header].startswith("#"):
        header += 1
    assert "helm-values/values.yaml" in "".join(lines[:header])
    assert "".join(lines[header:]) == render_kueue(values_platform(VALUES), tmp_path), (
        "helm-values/manifests/30-kueue.yaml is stale: regenerate it as its header says"
    )


def test_the_example_is_the_deployed_document_but_for_placeholders() -> None:
    deployed = values_platform(VALUES)
    example = yaml.safe_load(EXAMPLE.read_text())
    assert differences(deployed, example) == sorted(MEANT_TO_DIFFER)
    # the parts the Kueue objects and the manifests come from are the same
    for key in ("accelerators", "projects", "jobs"):
        assert deployed[key] == example[key], key


def test_the_pool_lends_every_model_of_the_deployed_document() -> None:
    """The shipped pool does not leave a model at quota 0 (issue 15: every job waited)."""
    kueue = [o for o in yaml.safe_load_all(KUEUE_FILE.read_text()) if o]
    deployed = values_platform(VALUES)
    name = deployed["jobs"].get("poolQueue", "pool")
    (pool,) = [o for o in kueue if o["kind"] == "ClusterQueue" and o["metadata"]["name"] == name]
    quotas = {
        flavor["name"]: resource["nominalQuota"]
        for group in pool["spec"]["resourceGroups"]
        for flavor in group["flavors"]
        for resource in flavor["resources"]
    }
    models = [f"{m['kind']}-{m['name']}" for m in deployed["accelerators"]]
    assert all(quotas[m] != "0" for m in models), quotas
