"""Storage at spawn through a real JupyterHub app (MockHub) and the emulated cluster."""

from __future__ import annotations

from typing import Any

from hub_helpers import add_user, until
from jupyterhub import orm

from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.platform.storage.naming import user_folder, volume_name
from aiinfn_hub.spawner.user_ids import user_number

NS = "jupyterhub"


def _pod(emulator: Emulator) -> dict[str, Any]:
    (pod,) = emulator.objects("Pod", NS)
    return pod


async def _restart(spawner: Any, emulator: Emulator) -> dict[str, Any]:
    await spawner.stop()
    await until(lambda: not emulator.objects("Pod", NS))
    await spawner.start()
    return _pod(emulator)


async def test_spawned_pod_has_exactly_the_planned_storage(hub: Any, emulator: Emulator) -> None:
    alice = add_user(hub, "alice", "cms", "ml-infn")
    alice.spawner.user_options = {"scratch": "50Gi"}
    await alice.spawner.start()
    pod = _pod(emulator)
    spec = pod["spec"]
    assert sorted(v["name"] for v in spec["volumes"]) == sorted(
        [
            "platform-fs",
            "scratch",
            volume_name("cvmfs", "sft.cern.ch"),
            volume_name("cvmfs", "cms.cern.ch"),
            volume_name("cvmfs", "lhcb.cern.ch"),
            "iam-token",
            "buckets",
        ]
    )
    notebook, sidecar = spec["containers"]
    assert (notebook["name"], sidecar["name"]) == ("notebook", "bucket-mount")
    mounts = {m["mountPath"]: m.get("subPath") for m in notebook["volumeMounts"]}
    assert mounts["/home/jovyan"] == "homes/alice"
    assert mounts["/home/jovyan/projects/cms"] == "projects/cms"
    assert mounts["/home/jovyan/projects/ml-infn"] == "projects/ml-infn"
    assert notebook["workingDir"] == "/home/jovyan"
    # the notebook container stays within the restricted profile; only the sidecar is privileged
    security = notebook["securityContext"]
    uid = 100000 + user_number(hub.db, "alice")  # the user's own id: uidBase + their number
    assert security["runAsNonRoot"] is True and security["runAsUser"] == uid
    assert security["capabilities"] == {"drop": ["ALL"]} and "privileged" not in security
    assert sidecar["securityContext"] == {"privileged": True}
    (init,) = spec["initContainers"]
    assert init["name"] == "storage-init"
    assert init["args"][1] == f"/export/homes/alice:{uid}:100:0700:owned"
    assert spec["securityContext"]["supplementalGroups"] == [5001, 5002]
    scratch = next(v for v in spec["volumes"] if v["name"] == "scratch")
    size = scratch["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
    assert size == "50Gi"
    # the shell scripts reach the pod unchanged by kubespawner's templating
    assert "${AIINFN_MOUNT_ROOT:?}" in sidecar["command"][2]
    assert alice.spawner.user_options["scratch"] == "50Gi"


async def test_restarts_never_duplicate_and_a_lost_group_loses_its_mount(
    hub: Any, emulator: Emulator
) -> None:
    bob = add_user(hub, "bob", "cms", "qml")
    await bob.spawner.start()
    first = _pod(emulator)
    again = await _restart(bob.spawner, emulator)
    assert again["spec"]["volumes"] == first["spec"]["volumes"]
    assert (
        again["spec"]["containers"][0]["volumeMounts"]
        == (first["spec"]["containers"][0]["volumeMounts"])
    )
    # IAM no longer lists bob in qml: the next start has no qml folder, gid or bucket
    orm_user = orm.User.find(hub.db, "bob")
    orm_user.groups = [g for g in orm_user.groups if g.name != "qml"]
    hub.db.commit()
    after = await _restart(bob.spawner, emulator)
    paths = [m["mountPath"] for m in after["spec"]["containers"][0]["volumeMounts"]]
    assert "/home/jovyan/projects/qml" not in paths and "/home/jovyan/projects/cms" in paths
    assert after["spec"]["securityContext"]["supplementalGroups"] == [5002]
    await bob.spawner.stop()


async def test_a_bad_scratch_size_is_refused_and_nothing_is_created(
    hub: Any, emulator: Emulator
) -> None:
    carol = add_user(hub, "carol", "cms")
    carol.spawner.user_options = {"scratch": "5Ti"}
    try:
        await carol.spawner.start()
    except Exception as exc:
        assert "scratch '5Ti' is not offered; choose one of: 10Gi, 50Gi, 200Gi" in str(
            getattr(exc, "log_message", exc)
        )
    else:
        raise AssertionError("a 5Ti scratch disk was accepted")
    assert emulator.objects("Pod", NS) == []


async def test_users_whose_old_slugs_collide_get_their_own_pod_home_secret_and_id(
    hub: Any, emulator: Emulator
) -> None:
    # kubespawner's 32-bit "safe slug" gives these two IAM usernames one name
    first = add_user(hub, "alice___._--__-.rossi", "cms")
    second = add_user(hub, "alice___.----_-.rossi", "cms")
    await first.spawner.start()
    await second.spawner.start()
    await until(lambda: len(emulator.objects("Pod", NS)) == 2)
    pods = {
        p["metadata"]["annotations"]["hub.jupyter.org/username"]: p
        for p in emulator.objects("Pod", NS)
    }
    a, b = pods[first.name], pods[second.name]
    assert a["metadata"]["name"] != b["metadata"]["name"]

    def home_and_uid(pod: dict[str, Any]) -> tuple[str, int]:
        notebook = pod["spec"]["containers"][0]
        home = next(m for m in notebook["volumeMounts"] if m["mountPath"] == "/home/jovyan")
        return home["subPath"], notebook["securityContext"]["runAsUser"]

    numbers = user_number(hub.db, first.name), user_number(hub.db, second.name)
    assert home_and_uid(a) == (f"homes/{user_folder(first.name)}", 100000 + numbers[0])
    assert home_and_uid(b) == (f"homes/{user_folder(second.name)}", 100000 + numbers[1])
    assert home_and_uid(a)[0] != home_and_uid(b)[0] and numbers[0] != numbers[1]
    await first.spawner.stop()
    await second.spawner.stop()


async def test_a_deleted_users_number_is_never_given_to_someone_else(
    hub: Any, emulator: Emulator
) -> None:
    # SQLite gives the id of a deleted newest user to the next one: the number must not follow
    erin = add_user(hub, "erin", "cms")
    await erin.spawner.start()
    (pod,) = emulator.objects("Pod", NS)
    erin_uid = pod["spec"]["containers"][0]["securityContext"]["runAsUser"]
    await erin.spawner.stop()
    await until(lambda: not emulator.objects("Pod", NS))
    erin_id = erin.id
    hub.users.delete(erin)
    frank = add_user(hub, "frank", "cms")
    await frank.spawner.start()
    (pod,) = emulator.objects("Pod", NS)
    frank_uid = pod["spec"]["containers"][0]["securityContext"]["runAsUser"]
    assert frank.id == erin_id  # the hub database reused the id...
    assert frank_uid != erin_uid  # ...but not the number
    assert user_number(hub.db, "erin") == erin_uid - 100000  # still reserved for erin
    await frank.spawner.stop()
