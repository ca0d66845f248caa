"""Volumes of containers run as local processes: host folders, subPaths, path translation,
secret/configMap files kept in sync, nested mounts, cleanup with the pod."""

from __future__ import annotations

import base64
import copy
import os
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ControllerCluster, running_cluster

from aiinfn_hub.dev.emulator.controllers.volumes import (
    FileContent,
    Mount,
    VolumeError,
    container_mounts,
    host_path,
    mounts_below,
    pod_folder,
    remove_tree,
    reset_pod_volumes,
    sub_path,
    translate,
    volume_files,
    volume_folder,
    write_files,
)
from aiinfn_hub.dev.emulator.resources import CONFIGMAPS, PODS, SECRETS

JSON = dict[str, Any]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path / "state", run_processes=True) as c:
        c.add_node("n1", address="127.1.0.1")
        yield c


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _pod(volumes: list[JSON], mounts: list[JSON], name: str = "p", **container: Any) -> JSON:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "nb", "z": 'q"x'}},
        "spec": {
            "containers": [{"name": "main", "volumeMounts": mounts, **container}],
            "volumes": volumes,
        },
    }


def _container(command: str, mounts: list[JSON], **extra: Any) -> JSON:
    return {
        "name": "main",
        "image": "x",
        "command": ["sh", "-c", command],
        "volumeMounts": mounts,
        **extra,
    }


def _waiting(cluster: ControllerCluster, name: str) -> JSON | None:
    pod = cluster.pod(name)
    statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
    waiting = statuses[0].get("state", {}).get("waiting") or {}
    return waiting if waiting.get("reason") == "CreateContainerConfigError" else None


# -- pure mapping --------------------------------------------------------------------------
def test_each_volume_kind_has_its_host_folder(tmp_path: Path) -> None:
    pod = _pod([], [])
    home = pod_folder(tmp_path, "ns", "p")
    cases = {
        "nfs": ({"nfs": {"server": "10.0.0.5", "path": "/exports/home/alice"}}, None),
        "pvc": ({"persistentVolumeClaim": {"claimName": "data-claim"}}, None),
        "host": ({"hostPath": {"path": "/etc", "type": "Directory"}}, None),
        "tmp": ({"emptyDir": {}}, home / "volumes" / "tmp"),
        "eph": ({"ephemeral": {"volumeClaimTemplate": {}}}, home / "volumes" / "eph"),
        "creds": ({"secret": {"secretName": "s"}}, home / "volumes" / "creds"),
        "odd": ({"gitRepo": {"repository": "x"}}, home / "volumes" / "odd"),
    }
    expected_shared = {
        "nfs": tmp_path / "volumes/nfs/10.0.0.5/exports/home/alice",
        "pvc": tmp_path / "volumes/pvc/ns/data-claim",
        "host": tmp_path / "volumes/hostpath/etc",
    }
    for name, (source, pod_scoped) in cases.items():
        folder = volume_folder(pod, {"name": name, **source}, tmp_path)
        assert folder == (pod_scoped or expected_shared[name]), name
    # an export path cannot climb out of the state folder
    sneaky = {"name": "n", "nfs": {"server": "..", "path": "/../../../etc"}}
    assert volume_folder(pod, sneaky, tmp_path) == tmp_path / "volumes/nfs/_/etc"


def test_csi_folders_are_stable_per_attributes(tmp_path: Path) -> None:
    pod = _pod([], [])

    def folder(attributes: JSON, handle: str | None = None) -> Path:
        csi: JSON = {"driver": "cvmfs.csi.cern.ch", "volumeAttributes": attributes}
        if handle:
            csi["volumeHandle"] = handle
        return volume_folder(pod, {"name": "c", "csi": csi}, tmp_path)

    first = folder({"repository": "sft.cern.ch", "b": "1"})
    assert first.parent == tmp_path / "volumes/csi/cvmfs.csi.cern.ch"
    assert len(first.name) == 12
    assert folder({"b": "1", "repository": "sft.cern.ch"}) == first
    assert folder({"repository": "cms.cern.ch", "b": "1"}) != first
    assert folder({"repository": "sft.cern.ch", "b": "1"}, "h1") != first


def test_translation_matches_whole_path_components_longest_first(tmp_path: Path) -> None:
    mounts = [
        Mount("home", "/home/jovyan", tmp_path / "nfs", tmp_path / "nfs"),
        Mount("cms", "/home/jovyan/projects/cms", tmp_path / "pvc", tmp_path / "pvc"),
        Mount("data", "/data", tmp_path / "d", tmp_path / "d"),
    ]
    d, nfs, pvc = tmp_path / "d", tmp_path / "nfs", tmp_path / "pvc"
    cases = {
        "/data": f"{d}",
        "/data/x.txt": f"{d}/x.txt",
        "--out=/data/o": f"--out={d}/o",
        "PATH=/bin:/data:/usr/bin": f"PATH=/bin:{d}:/usr/bin",
        "cat '/data' \"/data/a\"": f"cat '{d}' \"{d}/a\"",
        "/database /srv/data /data.bak ./data http://x/data": (
            "/database /srv/data /data.bak ./data http://x/data"
        ),
        "/home/jovyan/projects/cms/run.sh": f"{pvc}/run.sh",
        "/home/jovyan/projects/cmssw": f"{nfs}/projects/cmssw",
        "cd /home/jovyan && ls": f"cd {nfs} && ls",
    }
    for text, expected in cases.items():
        assert translate(text, mounts) == expected, text


def test_sub_paths_are_checked_and_expanded_like_the_kubelet() -> None:
    env = {"USER": "alice", "EMPTY": ""}
    assert sub_path({"subPath": "users/./alice/"}, env) == "users/alice"
    assert sub_path({"subPathExpr": "users/$(USER)"}, env) == "users/alice"
    with pytest.raises(VolumeError, match="must not be an absolute path"):
        sub_path({"subPath": "/etc"}, env)
    with pytest.raises(VolumeError, match=r"must not contain '\.\.'"):
        sub_path({"subPath": "a/../../b"}, env)
    with pytest.raises(VolumeError, match=r"must not contain '\.\.'"):
        sub_path({"subPathExpr": "$(UP)/x"}, {"UP": ".."})
    with pytest.raises(VolumeError, match="missing value for EMPTY, NOPE"):
        sub_path({"subPathExpr": "$(NOPE)/$(EMPTY)"}, env)


def test_host_path_tells_where_a_container_path_lives(tmp_path: Path) -> None:
    volumes = [
        {"name": "home", "nfs": {"server": "nfs1", "path": "/homes"}},
        {"name": "cfg", "configMap": {"name": "settings"}},
    ]
    mounts = [
        {"name": "home", "mountPath": "/home/jovyan", "subPathExpr": "$(NB_USER)"},
        {"name": "cfg", "mountPath": "/etc/app/app.ini", "subPath": "app.ini"},
        {"name": "cfg", "mountPath": "/etc/app/all/"},
    ]
    pod = _pod(volumes, mounts, env=[{"name": "NB_USER", "value": "alice"}])
    nfs = tmp_path / "volumes/nfs/nfs1/homes/alice"
    home = pod_folder(tmp_path, "ns", "p")
    assert host_path(pod, "main", "/home/jovyan", tmp_path) == nfs
    assert host_path(pod, "main", "/home/jovyan/.bashrc", tmp_path) == nfs / ".bashrc"
    assert host_path(pod, "main", "/etc/app/all/x", tmp_path) == home / "volumes/cfg/x"
    # a subPath of a configMap volume is a copy taken at start (it does not follow updates)
    snapshot = host_path(pod, "main", "/etc/app/app.ini", tmp_path)
    assert snapshot == home / "volume-subpaths/cfg/main/1"
    assert host_path(pod, "main", "/home/jovyanx", tmp_path) is None
    assert host_path(pod, "main", "/tmp", tmp_path) is None
    assert host_path(pod, "sidecar", "/home/jovyan", tmp_path) is None
    assert (
        host_path(pod, "main", "/home/jovyan", tmp_path, {"NB_USER": "bob"}) == nfs.parent / "bob"
    )


def test_volume_files_of_secrets_config_maps_projections_and_the_downward_api() -> None:
    objects = {
        ("Secret", "ns", "s"): {"data": {"user": _b64("alice"), "pw": _b64("pa55")}},
        ("ConfigMap", "ns", "cm"): {"data": {"a.ini": "x=1"}, "binaryData": {"b": _b64("\x00")}},
    }

    def lookup(kind: str, ns: str, name: str) -> JSON | None:
        return objects.get((kind, ns, name))

    def files(source: JSON) -> dict[str, FileContent] | None:
        return volume_files(_pod([], []), {"name": "v", **source}, lookup, {"cpu": "4"})

    assert files({"secret": {"secretName": "s", "defaultMode": 0o400}}) == {
        "user": FileContent(b"alice", 0o400),
        "pw": FileContent(b"pa55", 0o400),
    }
    items = [{"key": "pw", "path": "db/password", "mode": 0o600}]
    assert files({"secret": {"secretName": "s", "items": items}}) == {
        "db/password": FileContent(b"pa55", 0o600)
    }
    assert files({"configMap": {"name": "cm"}}) == {
        "a.ini": FileContent(b"x=1", 0o644),
        "b": FileContent(b"\x00", 0o644),
    }
    projected = {
        "defaultMode": 0o440,
        "sources": [
            {"secret": {"name": "s", "items": [{"key": "user", "path": "u"}]}},
            {"configMap": {"name": "cm", "items": [{"key": "a.ini", "path": "conf/a.ini"}]}},
            {"secret": {"name": "absent", "optional": True}},
            {
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                }
            },
        ],
    }
    assert files({"projected": projected}) == {
        "u": FileContent(b"alice", 0o440),
        "conf/a.ini": FileContent(b"x=1", 0o440),
        "labels": FileContent(b'app="nb"\nz="q\\"x"', 0o440),
    }
    downward = {
        "items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {
                "path": "cpu",
                "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu"},
            },
        ]
    }
    assert files({"downwardAPI": downward}) == {
        "name": FileContent(b"p", 0o644),
        "cpu": FileContent(b"4", 0o644),
    }
    assert files({"emptyDir": {}}) is None
    assert files({"secret": {"secretName": "gone", "optional": True}}) == {}
    with pytest.raises(VolumeError, match='volume "v" : secret "gone" not found'):
        files({"secret": {"secretName": "gone"}})
    with pytest.raises(VolumeError, match="configmap references non-existent config key: k"):
        files({"configMap": {"name": "cm", "items": [{"key": "k", "path": "k"}]}})


def test_write_files_replaces_changed_files_and_drops_stale_ones(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    assert write_files(folder, {"a": FileContent(b"1"), "d/b": FileContent(b"2", 0o600)})
    (folder / "link").symlink_to(tmp_path)
    inode = (folder / "a").stat().st_ino
    assert not write_files(folder, {"a": FileContent(b"1"), "d/b": FileContent(b"2", 0o600)})
    assert write_files(folder, {"a": FileContent(b"new")})
    assert (folder / "a").read_bytes() == b"new" and (folder / "a").stat().st_ino != inode
    assert sorted(p.name for p in folder.iterdir()) == ["a", "link"]  # d/ gone, link kept


# -- containers run as local processes -----------------------------------------------------
async def test_empty_dir_receives_the_output_and_goes_with_the_pod(
    cluster: ControllerCluster,
) -> None:
    mounts = [{"name": "scratch", "mountPath": "/data"}]
    cluster.create_pod(
        "writer",
        containers=[_container("echo hi > /data/out.txt; sleep 30", mounts)],
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    folder = pod_folder(cluster.state_dir, "default", "writer") / "volumes" / "scratch"
    out = folder / "out.txt"
    await cluster.wait_for(lambda: out.is_file() and out.read_text() == "hi\n", what="out.txt")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777
    cluster.delete(PODS, "writer", grace_period=0)
    await cluster.gone(PODS, "writer")
    await cluster.wait_for(lambda: not folder.exists(), what="emptyDir removed")


async def test_home_on_nfs_and_other_shared_volumes_hold_what_the_process_writes(
    cluster: ControllerCluster,
) -> None:
    state = cluster.state_dir
    volumes = [
        {"name": "home", "nfs": {"server": "nfs.example", "path": "/homes/alice"}},
        {"name": "claim", "persistentVolumeClaim": {"claimName": "work"}},
        {"name": "host", "hostPath": {"path": "/var/scratch", "type": "DirectoryOrCreate"}},
        {"name": "cvmfs", "csi": {"driver": "cvmfs", "volumeAttributes": {"repo": "sft"}}},
    ]
    mounts = [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "claim", "mountPath": "/mnt/claim"},
        {"name": "host", "mountPath": "/var/scratch"},
        {"name": "cvmfs", "mountPath": "/cvmfs/sft"},
    ]
    script = (
        "echo x > $HOME/x; echo c > /mnt/claim/c; echo h > /var/scratch/h; echo v > /cvmfs/sft/v; "
        'pwd > "$OUT"; echo "$(NOTE)" >> "$OUT"; sleep 30'
    )
    env = [
        {"name": "HOME", "value": "/home/jovyan"},
        {"name": "OUT", "value": "$(HOME)/pwd.txt"},
        {"name": "NOTE", "value": "kept:/mnt/claim/c"},
    ]
    container = _container(script, mounts, env=env, workingDir="/home/jovyan/src")
    cluster.create_pod("nb", containers=[container], volumes=volumes)
    nfs = state / "volumes/nfs/nfs.example/homes/alice"
    report = nfs / "pwd.txt"
    await cluster.wait_for(lambda: report.is_file() and report.read_text().count("\n") == 2)
    assert (nfs / "x").read_text() == "x\n"
    assert report.read_text() == f"{nfs / 'src'}\nkept:{state / 'volumes/pvc/default/work'}/c\n"
    assert (state / "volumes/pvc/default/work/c").read_text() == "c\n"
    assert (state / "volumes/hostpath/var/scratch/h").read_text() == "h\n"
    [csi] = (state / "volumes/csi/cvmfs").iterdir()
    assert (csi / "v").read_text() == "v\n"
    pod = cluster.pod("nb")
    assert pod is not None
    assert host_path(pod, "main", "/home/jovyan/x", state) == nfs / "x"
    # a second pod naming the same export sees the first one's files
    other = [{"name": "home", "mountPath": "/mnt/h"}]
    cluster.create_pod(
        "peer",
        containers=[_container("cat /mnt/h/x", other)],
        volumes=volumes[:1],
        restartPolicy="Never",
    )
    await cluster.phase("peer", "Succeeded")
    log = cluster.store.logs[("default", "peer", "main")]
    assert isinstance(log, Path) and log.read_text() == "x\n"


async def test_sub_paths_are_created_inside_their_volume(cluster: ControllerCluster) -> None:
    volumes = [{"name": "homes", "persistentVolumeClaim": {"claimName": "homes"}}]
    mounts = [{"name": "homes", "mountPath": "/home/jovyan", "subPathExpr": "users/$(NB_USER)"}]
    env = [{"name": "NB_USER", "value": "alice"}]
    cluster.create_pod(
        "sub",
        containers=[_container("echo me > /home/jovyan/who; sleep 30", mounts, env=env)],
        volumes=volumes,
    )
    who = cluster.state_dir / "volumes/pvc/default/homes/users/alice/who"
    await cluster.wait_for(lambda: who.is_file() and who.read_text() == "me\n", what="who")


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"subPath": "escape/inner"}, "leads outside the volume"),
        ({"subPath": "escape"}, "leads outside the volume"),
        ({"subPathExpr": "$(UP)/elsewhere"}, "must not contain '..'"),
    ],
)
async def test_sub_paths_leading_out_of_the_volume_are_refused(
    cluster: ControllerCluster, tmp_path: Path, mount: JSON, message: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    claim = cluster.state_dir / "volumes/pvc/default/shared"
    claim.mkdir(parents=True)
    (claim / "escape").symlink_to(outside, target_is_directory=True)
    mounts = [{"name": "shared", "mountPath": "/data", **mount}]
    cluster.create_pod(
        "evil",
        containers=[_container("touch /data/pwned", mounts, env=[{"name": "UP", "value": ".."}])],
        volumes=[{"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}],
        restartPolicy="Never",
    )
    waiting = await cluster.wait_for(lambda: _waiting(cluster, "evil"), what="config error")
    assert 'volumeMount "shared" of container "main"' in waiting["message"]
    assert message in waiting["message"]
    [event] = cluster.events("evil", "Failed")
    assert event["type"] == "Warning" and message in event["message"]
    assert cluster.events("evil", "Started") == []
    assert not cluster.controllers.kubelet.local_pids()
    assert list(outside.iterdir()) == []
    assert not (cluster.state_dir / "volumes/pvc/elsewhere").exists()


async def test_secret_and_config_map_files_follow_their_sources(
    cluster: ControllerCluster,
) -> None:
    cluster.store.create(
        SECRETS,
        {"metadata": {"name": "creds", "namespace": "default"}, "data": {"token": _b64("one")}},
    )
    cluster.store.create(
        CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"a": "1"}}
    )
    volumes = [
        {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {
            "name": "cfg",
            "configMap": {"name": "cfg", "items": [{"key": "a", "path": "conf/a.ini"}]},
        },
    ]
    mounts = [
        {"name": "creds", "mountPath": "/var/run/creds"},
        {"name": "creds", "mountPath": "/etc/token", "subPath": "token"},
        {"name": "cfg", "mountPath": "/etc/app"},
    ]
    command = "cat /var/run/creds/token /etc/token /etc/app/conf/a.ini; sleep 30"
    cluster.create_pod("reader", containers=[_container(command, mounts)], volumes=volumes)
    await cluster.running("reader")
    pod = cluster.pod("reader")
    assert pod is not None
    whole = host_path(pod, "main", "/var/run/creds/token", cluster.state_dir)
    single = host_path(pod, "main", "/etc/token", cluster.state_dir)
    config = host_path(pod, "main", "/etc/app/conf/a.ini", cluster.state_dir)
    assert whole and single and config
    log = cluster.store.logs[("default", "reader", "main")]
    assert isinstance(log, Path)
    await cluster.wait_for(lambda: log.read_text() == "oneone1", what="the process read them")
    assert stat.S_IMODE(whole.stat().st_mode) == 0o400
    assert config.read_text() == "1"

    secret = copy.deepcopy(cluster.store.get(SECRETS, "default", "creds"))
    assert secret is not None
    secret["data"] = {"token": _b64("two"), "extra": _b64("e")}
    cluster.store.update(SECRETS, secret)
    cfg = copy.deepcopy(cluster.store.get(CONFIGMAPS, "default", "cfg"))
    assert cfg is not None
    cfg["data"] = {"a": "2"}
    cluster.store.update(CONFIGMAPS, cfg)
    await cluster.wait_for(lambda: whole.read_text() == "two" and config.read_text() == "2")
    assert (whole.parent / "extra").read_text() == "e"
    assert stat.S_IMODE(whole.stat().st_mode) == 0o400
    # like a subPath mount in Kubernetes, the single-file mount keeps what it had at start
    assert single.read_text() == "one"


async def test_missing_secret_volume_keeps_the_container_from_starting(
    cluster: ControllerCluster,
) -> None:
    mounts = [{"name": "creds", "mountPath": "/creds"}]
    cluster.create_pod(
        "needs",
        containers=[_container("cat /creds/t", mounts)],
        volumes=[{"name": "creds", "secret": {"secretName": "later"}}],
        restartPolicy="Never",
    )
    waiting = await cluster.wait_for(lambda: _waiting(cluster, "needs"), what="config error")
    expected = 'MountVolume.SetUp failed for volume "creds" : secret "later" not found'
    assert waiting["message"] == expected
    pod = cluster.pod("needs")
    assert pod is not None and pod["status"]["phase"] == "Pending"
    assert cluster.events("needs", "Failed")[0]["message"] == f"Error: {expected}"
    assert cluster.events("needs", "Started") == []
    assert ("default", "needs", "main") not in cluster.store.logs
    cluster.store.create(
        SECRETS, {"metadata": {"name": "later", "namespace": "default"}, "data": {"t": _b64("ok")}}
    )
    await cluster.phase("needs", "Succeeded", timeout=5)
    log = cluster.store.logs[("default", "needs", "main")]
    assert isinstance(log, Path) and log.read_text() == "ok"


async def test_a_mount_inside_another_is_linked_into_the_outer_folder(
    cluster: ControllerCluster,
) -> None:
    volumes = [
        {"name": "home", "nfs": {"server": "nfs", "path": "/home/alice"}},
        {"name": "cms", "persistentVolumeClaim": {"claimName": "cms"}},
    ]
    mounts = [
        {"name": "cms", "mountPath": "/home/jovyan/projects/cms"},
        {"name": "home", "mountPath": "/home/jovyan"},
    ]
    cluster.create_pod(
        "nested",
        containers=[_container("echo r > /home/jovyan/projects/cms/run.txt; sleep 30", mounts)],
        volumes=volumes,
    )
    pvc = cluster.state_dir / "volumes/pvc/default/cms"
    await cluster.wait_for(lambda: (pvc / "run.txt").is_file(), what="run.txt")
    link = cluster.state_dir / "volumes/nfs/nfs/home/alice/projects/cms"
    assert link.is_symlink() and link.resolve() == pvc.resolve()
    assert (link / "run.txt").read_text() == "r\n"


async def test_an_existing_entry_is_not_replaced_by_a_nested_mount_link(
    cluster: ControllerCluster,
) -> None:
    nfs = cluster.state_dir / "volumes/nfs/nfs/home/bob"
    (nfs / "projects/cms").mkdir(parents=True)
    (nfs / "projects/cms/mine").write_text("keep")
    volumes = [
        {"name": "home", "nfs": {"server": "nfs", "path": "/home/bob"}},
        {"name": "cms", "emptyDir": {}},
    ]
    mounts = [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "cms", "mountPath": "/home/jovyan/projects/cms"},
    ]
    cluster.create_pod("keep", containers=[_container("sleep 30", mounts)], volumes=volumes)
    await cluster.running("keep")
    assert not (nfs / "projects/cms").is_symlink()
    assert (nfs / "projects/cms/mine").read_text() == "keep"


async def test_simulated_containers_get_no_folders(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, run_processes=False) as cluster:
        cluster.add_node("n1")
        volumes = [
            {"name": "home", "nfs": {"server": "nfs", "path": "/h"}},
            {"name": "creds", "secret": {"secretName": "absent"}},
        ]
        mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
        cluster.create_pod("sim", containers=[_container("true", mounts)], volumes=volumes)
        await cluster.running("sim")
        assert not (tmp_path / "volumes").exists()
        assert not pod_folder(tmp_path, "default", "sim").exists()


def test_container_mounts_skip_unknown_volumes(tmp_path: Path) -> None:
    pod = _pod([{"name": "a", "emptyDir": {}}], [{"name": "b", "mountPath": "/b"}])
    assert container_mounts(pod, pod["spec"]["containers"][0], {}, tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_resetting_a_pods_volumes_never_deletes_through_a_mount_left_inside(
    tmp_path: Path,
) -> None:
    # a mount left in an emptyDir by a killed sidecar (a bind mount stands in for FUSE): the
    # files behind it belong to someone else and must survive the next pod of that name
    outside = tmp_path / "remote-files"
    outside.mkdir()
    (outside / "keep.txt").write_text("results")
    pod_dir = tmp_path / "pod"
    point = pod_dir / "volumes" / "juicefs" / "mnt"
    point.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(outside), str(point)], check=True)
    try:
        assert mounts_below(pod_dir / "volumes") == [str(point)]
        reset_pod_volumes(pod_dir)
        assert mounts_below(pod_dir / "volumes") == []
        assert not (pod_dir / "volumes").exists()
        assert (outside / "keep.txt").read_text() == "results"
        # the same when the whole pod folder goes (the pod is removed)
        point.mkdir(parents=True)
        subprocess.run(["mount", "--bind", str(outside), str(point)], check=True)
        remove_tree(pod_dir)
        assert not pod_dir.exists() and (outside / "keep.txt").read_text() == "results"
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
