"""Cluster files describe nodes as a kubelet would register them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, initial_objects, load_cluster_file
from aiinfn_hub.dev.emulator.kubeconfig import write_kubeconfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.yaml"


def test_example_cluster_has_the_papers_four_servers() -> None:
    spec = load_cluster_file(EXAMPLE)
    assert len(spec.nodes) == 4
    resources = {r for node in spec.nodes for r in node.capacity}
    assert "nvidia.com/gpu" in resources
    assert any(r.startswith("nvidia.com/mig-") for r in resources)
    assert sum(1 for r in resources if "xilinx" in r or r.startswith("amd.com/")) >= 3


def test_node_objects_are_complete() -> None:
    spec = ClusterSpec.model_validate(
        {
            "nodes": [
                {
                    "name": "gpu-1",
                    "labels": {"nvidia.com/gpu.product": "Tesla-T4"},
                    "taints": [{"key": "reserved", "value": "cms", "effect": "NoSchedule"}],
                    "unschedulable": True,
                    "capacity": {"cpu": 8, "memory": "32Gi", "nvidia.com/gpu": 2},
                }
            ]
        }
    )
    objects = initial_objects(spec)
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"] == [
        "default",
        "kube-system",
    ]
    node = next(o for o in objects if o["kind"] == "Node")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "gpu-1"
    assert node["status"]["capacity"] == {
        "cpu": "8",
        "memory": "32Gi",
        "nvidia.com/gpu": "2",
        "pods": "110",
    }
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    assert node["spec"]["unschedulable"] is True
    assert {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"} in node["spec"][
        "taints"
    ]
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    address = node["status"]["addresses"][0]["address"]
    assert address.startswith("127.")  # only loopback addresses, never a real network


def test_unknown_keys_are_rejected_with_their_path(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump({"nodes": [{"name": "x", "capacity": {}, "gpus": 2}]}))
    with pytest.raises(ValueError, match=r"nodes\.0\.gpus: Extra inputs are not permitted"):
        load_cluster_file(bad)


def test_kubeconfig_is_private_and_points_at_the_url(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kc", "https://127.0.0.1:1234", namespace="hub", token="t", ca_pem=b"PEM"
    )
    doc = yaml.safe_load(path.read_text())
    assert doc["clusters"][0]["cluster"] == {
        "server": "https://127.0.0.1:1234",
        "certificate-authority-data": "UEVN",
    }
    assert doc["contexts"][0]["context"]["namespace"] == "hub"
    assert doc["current-context"] == doc["contexts"][0]["name"]
    assert doc["users"][0]["user"] == {"token": "t"}
    assert path.stat().st_mode & 0o777 == 0o600


def test_kubeconfig_replaces_a_readable_file_or_a_symlink_without_writing_through(
    tmp_path: Path,
) -> None:
    # an old kubeconfig others can read, then a symlink planted where the next one goes:
    # the token must reach neither a readable file nor the link's target
    path = tmp_path / "kc"
    path.write_text("old")
    path.chmod(0o644)
    write_kubeconfig(path, "https://127.0.0.1:1", token="secret-1", ca_pem=b"")
    assert path.stat().st_mode & 0o777 == 0o600
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    elsewhere.chmod(0o644)
    path.unlink()
    path.symlink_to(elsewhere)
    write_kubeconfig(path, "https://127.0.0.1:1", token="secret-2", ca_pem=b"")
    assert not path.is_symlink() and "secret-2" in path.read_text()
    assert elsewhere.read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "kc"]
