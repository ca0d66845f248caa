"""The storage plan of a server: a pure function of config, user and projects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aiinfn_hub.config import PlatformConfig, PlatformConfigError, validate_platform_config
from aiinfn_hub.platform.storage import spawner_settings, storage_plan
from aiinfn_hub.platform.storage.naming import user_folder
from aiinfn_hub.platform.storage.nfs import INIT_CONTAINER

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platform.yaml"


def config(**storage: Any) -> PlatformConfig:
    data = yaml.safe_load(EXAMPLE.read_text())
    for key, value in storage.items():
        if value is None:
            data["storage"].pop(key, None)
        else:
            data["storage"][key] = value
    return validate_platform_config(data)


def plan(  # type: ignore[no-untyped-def]
    cfg: PlatformConfig,
    user: str = "alice",
    *groups: str,
    scratch: str | None = None,
    user_number: int = 42,
):
    return storage_plan(
        cfg,
        user,
        frozenset(groups),
        scratch_size=scratch,
        token_secret=f"aiinfn-token-{user}",
        user_number=user_number,
    )


def mounts(p: Any) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in p.mounts}


def test_a_user_in_no_project_gets_home_shared_areas_scratch_cvmfs_and_own_bucket() -> None:
    p = plan(config(), "alice")
    by_path = mounts(p)
    assert by_path["/home/jovyan"]["subPath"] == "homes/alice"
    assert not [m for m in by_path if m.startswith("/home/jovyan/projects")]
    assert by_path["/envs"]["readOnly"] is True and by_path["/shared"]["readOnly"] is True
    assert "/scratch" in by_path and "/cvmfs/sft.cern.ch" in by_path
    assert p.buckets == ["alice"] and p.supplemental_gids == []
    assert (p.uid, p.gid, p.working_dir) == (100042, 100, "/home/jovyan")
    assert p.environment == {"HOME": "/home/jovyan", "SCRATCH": "/scratch"}
    (init,) = p.init_containers
    assert init["args"] == ["/export/homes:0:0:0755", "/export/homes/alice:100042:100:0700:owned"]


def test_each_user_runs_as_their_own_id_and_owns_their_home() -> None:
    cfg = config()
    alice, bob = plan(cfg, "alice", user_number=1), plan(cfg, "bob", user_number=2)
    assert (alice.uid, bob.uid) == (100001, 100002)
    assert alice.init_containers[0]["args"][1] == "/export/homes/alice:100001:100:0700:owned"
    assert bob.init_containers[0]["args"][1] == "/export/homes/bob:100002:100:0700:owned"
    shared = config(home={"uidBase": None, "uid": 1000})
    alice_shared, bob_shared = (
        plan(shared, "alice", user_number=1),
        plan(shared, "bob", user_number=2),
    )
    assert alice_shared.uid == bob_shared.uid == 1000


def test_projects_give_their_folders_gids_and_buckets_only_to_members() -> None:
    p = plan(config(), "bob", "cms", "ml-infn", "fpga-lab", "not-a-project")
    by_path = mounts(p)
    assert by_path["/home/jovyan/projects/cms"]["subPath"] == "projects/cms"
    assert by_path["/home/jovyan/projects/ml-infn"]["subPath"] == "projects/ml-infn"
    # fpga-lab keeps its data in its bucket: no shared folder
    assert "/home/jovyan/projects/fpga-lab" not in by_path
    assert p.supplemental_gids == [5001, 5002]
    assert p.buckets == ["bob", "fpga-lab-data", "ml-infn-datasets"]
    assert p.init_containers[0]["args"][2:] == [
        "/export/projects:0:0:0755",
        "/export/projects/cms:0:5002:2770",
        "/export/projects/ml-infn:0:5001:2770",
    ]
    (sidecar,) = p.sidecars
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["AIINFN_BUCKETS"] == "bob fpga-lab-data ml-infn-datasets"


def test_losing_a_group_removes_its_mount_at_the_next_plan() -> None:
    cfg = config()
    before = plan(cfg, "bob", "cms", "qml")
    after = plan(cfg, "bob", "cms")
    assert "/home/jovyan/projects/qml" in mounts(before)
    assert "/home/jovyan/projects/qml" not in mounts(after)
    assert 5004 not in after.supplemental_gids


def test_maintainers_get_their_shared_area_read_write() -> None:
    p = plan(config(), "eve", "env-maintainers")
    assert mounts(p)["/envs"]["readOnly"] is False
    assert mounts(p)["/shared"]["readOnly"] is True


def test_scratch_size_and_kind_follow_config() -> None:
    ephemeral = plan(config(), "alice", scratch="50Gi")
    (volume,) = [v for v in ephemeral.volumes if v["name"] == "scratch"]
    claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "nvme-local"
    assert claim["resources"]["requests"]["storage"] == "50Gi"
    empty = plan(config(scratch={"sizeChoices": ["5Gi"]}), "alice")
    (volume,) = [v for v in empty.volumes if v["name"] == "scratch"]
    assert volume == {"name": "scratch", "emptyDir": {"sizeLimit": "5Gi"}}


def test_cvmfs_claim_mode_mounts_the_whole_tree_once() -> None:
    p = plan(config(cvmfs={"repositories": ["sft.cern.ch"], "claimName": "cvmfs"}), "alice")
    cvmfs = [m for m in p.mounts if m["mountPath"].startswith("/cvmfs")]
    assert cvmfs == [
        {
            "name": "cvmfs",
            "mountPath": "/cvmfs",
            "readOnly": True,
            "mountPropagation": "HostToContainer",
        }
    ]


def test_csi_mode_has_no_privileged_container_and_passes_the_token_secret() -> None:
    buckets = {"mode": "csi", "endpoint": "https://rgw.example.org"}
    p = plan(config(buckets=buckets), "alice", "ml-infn")
    assert p.sidecars == [] and p.buckets == []
    csi = [v for v in p.volumes if "csi" in v and v["csi"]["driver"] == "csi-rclone"]
    assert [v["csi"]["volumeAttributes"]["remotePath"] for v in csi] == [
        "alice",
        "ml-infn-datasets",
    ]
    assert all(v["csi"]["nodePublishSecretRef"] == {"name": "aiinfn-token-alice"} for v in csi)
    assert "/home/jovyan/buckets/ml-infn-datasets" in mounts(p)


def test_a_username_that_is_no_bucket_name_gets_a_note_not_a_bad_bucket() -> None:
    p = plan(config(), "Al.ice")
    assert p.buckets == []
    assert "no personal bucket" in p.notes[0]
    p = plan(config(buckets={"endpoint": "https://x.org", "userBucket": "home-{user}"}), "Al.ice")
    assert p.buckets == [f"home-{user_folder('Al.ice')}"]


def test_sidecar_reads_the_token_from_the_secret_volume_never_from_env() -> None:
    p = plan(config(), "alice")
    (sidecar,) = p.sidecars
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["AIINFN_TOKEN_FILE"] == "/var/run/aiinfn/token/token"
    assert all("valueFrom" not in e for e in sidecar["env"])
    (token,) = [v for v in p.volumes if v["name"] == "iam-token"]
    assert token["secret"] == {
        "secretName": "aiinfn-token-alice",
        "optional": True,
        "defaultMode": 0o400,
    }
    token_mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "iam-token")
    assert "subPath" not in token_mount  # a whole-volume mount is updated by the kubelet
    notebook = mounts(p)["/home/jovyan/buckets"]
    assert notebook["mountPropagation"] == "HostToContainer"


def test_no_storage_section_means_no_volumes() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data.pop("storage")
    p = plan(validate_platform_config(data), "alice", "cms")
    assert p.volumes == [] and p.mounts == [] and p.init_containers == [] and p.sidecars == []
    assert p.uid is None and p.working_dir is None


def test_settings_are_idempotent_keep_the_hub_values_and_escape_templates() -> None:
    p = plan(config(), "alice", "cms")
    base = {
        "volumes": [{"name": "hub-extra", "emptyDir": {}}],
        "volume_mounts": [{"name": "hub-extra", "mountPath": "/opt/{username}"}],
        "environment": {"PLATFORM": "ai-infn"},
        "supplemental_gids": [42],
    }
    first = spawner_settings(p, base)
    assert first == spawner_settings(p, base)
    assert first["volumes"][0]["name"] == "hub-extra"
    assert first["volume_mounts"][0]["mountPath"] == "/opt/{username}"  # the hub's template
    assert len(first["volumes"]) == 1 + len(p.volumes)
    assert first["supplemental_gids"] == [42, 5002]
    assert first["environment"]["PLATFORM"] == "ai-infn"
    script = first["init_containers"][0]["command"][2]
    assert "${" not in script.replace("${{", "") and "{{" in script  # braces escaped


def test_every_volume_and_container_passes_the_official_schema() -> None:
    for buckets in (None, {"mode": "csi", "endpoint": "https://rgw.example.org"}):
        cfg = config(buckets=buckets) if buckets else config()
        p = plan(cfg, "bob", "cms", "ml-infn", "env-maintainers", scratch="200Gi")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "jupyter-bob"},
            "spec": {
                "volumes": p.volumes,
                "initContainers": p.init_containers,
                "containers": [
                    {"name": "notebook", "image": "x", "volumeMounts": p.mounts},
                    *p.sidecars,
                ],
                "securityContext": {"supplementalGroups": p.supplemental_gids},
            },
        }
        kubernetes_validate.validate(pod, "1.33.0", strict=True)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"nfs": {"server": "nfs", "claimName": "fs"}}, "either server"),
        ({"nfs": {"path": "/x"}}, "either server"),
        ({"nfs": {"server": "nfs", "homesDir": "../etc"}}, "without '..'"),
        ({"nfs": {"server": "nfs", "homesDir": "/abs"}}, "relative to the export"),
        ({"scratch": {"mountPath": "scratch"}}, "absolute, normalized path"),
        ({"scratch": {"sizeChoices": ["1Gi"], "defaultSize": "2Gi"}}, "not one of sizeChoices"),
        ({"cvmfs": {"repositories": ["not a repo"]}}, "CVMFS repository"),
        ({"environments": {"dir": "envs", "mountPath": "/envs"}}, "needs nfs"),
        ({"buckets": {"endpoint": "x", "mode": "fuse"}}, "mode"),
    ],
)
def test_bad_storage_settings_are_refused_with_their_path(
    storage: dict[str, Any], message: str
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["storage"] = storage
    with pytest.raises(PlatformConfigError) as exc:
        validate_platform_config(data)
    assert message in str(exc.value)
    assert "storage" in str(exc.value)


def test_projects_need_distinct_gids_for_their_shared_folders() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["projects"]["qml"]["storage"] = {"gid": 5001}
    data["projects"]["cms"]["storage"] = {}
    with pytest.raises(PlatformConfigError) as exc:
        validate_platform_config(data)
    text = str(exc.value)
    assert "projects.qml.storage.gid: gid 5001 is already the gid of project" in text
    assert "projects.cms.storage.gid: required" in text


def test_init_container_is_root_with_only_the_capabilities_it_needs() -> None:
    (init,) = plan(config(), "alice").init_containers
    assert init["name"] == INIT_CONTAINER
    security = init["securityContext"]
    assert security["runAsUser"] == 0 and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {
        "drop": ["ALL"],
        "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"],
    }
    assert "privileged" not in security
