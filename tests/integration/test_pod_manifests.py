"""Golden pod manifests for a matrix of spawn choices; each passes the official schema.

Regenerate after an intended change with ``AIINFN_UPDATE_GOLDEN=1 scripts/test -k golden``
and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jupyterhub import orm
from kubernetes_asyncio.client import ApiClient

from aiinfn_hub.spawner.spawner import AIInfnSpawner, stop_shared_inventories

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = {
    "cpu-only": ("cms", {"image": "base", "cpu": 1, "memory": "4Gi"}),
    "t4-pair": (
        "ml-infn",
        {"image": "cuda-ml", "cpu": 8, "memory": "32Gi", "accelerator": "t4", "count": 2},
    ),
    "mig-pinned": ("qml", {"image": "qml", "accelerator": "a100-3g-40gb", "server": "server-3"}),
    "fpga": ("fpga-lab", {"accelerator": "u250"}),
    "scratch-csi-buckets": ("ml-infn", {"scratch": "50Gi"}),
    "no-storage": ("cms", {}),
}
# configuration variants of examples/platform.yaml (default: the file as it is)
VARIANTS = {
    "scratch-csi-buckets": {
        "scratch": {"sizeChoices": ["10Gi", "50Gi"]},  # an emptyDir: no storage class
        "buckets": {"mode": "csi", "endpoint": "https://rgw.cloud.infn.it"},
        "cvmfs": {"repositories": ["sft.cern.ch"], "claimName": "cvmfs"},
    },
    "no-storage": None,
}


def _platform_file(case: str, folder: Path) -> Path:
    if case not in VARIANTS:
        return EXAMPLES / "platform.yaml"
    data = yaml.safe_load((EXAMPLES / "platform.yaml").read_text())
    variant = VARIANTS[case]
    if variant is None:
        data.pop("storage")
    else:
        data["storage"].update(variant)
    path = folder / "platform.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# values that change from run to run
_VOLATILE = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES")


# kubespawner's annotations naming the versions at hand (scripts/test-hub-image runs older ones)
_VERSIONS = ("hub.jupyter.org/jupyterhub-version", "hub.jupyter.org/kubespawner-version")


def _stable(manifest: dict[str, Any]) -> dict[str, Any]:
    annotations = manifest["metadata"].get("annotations") or {}
    for key in _VERSIONS:
        assert annotations.get(key), f"kubespawner no longer writes {key}"
        annotations[key] = "<version>"
    for container in manifest["spec"]["containers"]:
        for env in container.get("env") or []:
            if env["name"] in _VOLATILE or "PORT" in env["name"] or env["name"].endswith("_URL"):
                env["value"] = "<varies>"
    return manifest


@pytest.mark.parametrize("case", sorted(CASES))
async def test_golden_pod_manifest(case: str, hub_app: Any, kube_env: Path, tmp_path: Path) -> None:
    project, options = CASES[case]
    app = await hub_app(
        config={
            "JupyterHub": {"spawner_class": AIInfnSpawner},
            "AIInfnSpawner": {
                "platform_config_file": str(_platform_file(case, tmp_path)),
                "notebook_priority_class": "notebook",
                "namespace": "jupyterhub",
                "cmd": ["jupyterhub-singleuser"],
            },
        }
    )
    try:
        orm_user = orm.User(name="dana")
        group = orm.Group(name=project)
        orm_user.groups.append(group)
        app.db.add_all([orm_user, group])
        app.db.commit()
        spawner = app.users[orm_user.id].spawner
        spawner.user_options = options
        await spawner.load_user_options()
        pod = await spawner.get_pod_manifest()
        manifest = _stable(ApiClient().sanitize_for_serialization(pod))
        manifest.update(apiVersion="v1", kind="Pod")
        kubernetes_validate.validate(manifest, "1.33.0", strict=True)
        path = GOLDEN / f"pod-{case}.json"
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        if os.environ.get("AIINFN_UPDATE_GOLDEN"):
            path.write_text(text)
        assert path.exists(), f"{path.name} is missing: create it with AIINFN_UPDATE_GOLDEN=1"
        assert text == path.read_text(), f"{path.name} differs: rerun with AIINFN_UPDATE_GOLDEN=1"
        security = manifest["spec"]["containers"][0]["securityContext"]
        assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
        assert manifest["spec"]["automountServiceAccountToken"] is False
    finally:
        await stop_shared_inventories()
