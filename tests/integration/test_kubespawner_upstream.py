"""Faithfulness: the unmodified upstream KubeSpawner runs against the emulator.

A real JupyterHub app (pytest-jupyterhub's MockHub) owns the user and the spawner; the spawner
talks to the emulator over HTTP through kubernetes_asyncio, exactly as it would to a cluster.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from kubespawner import KubeSpawner

from aiinfn_hub.dev.emulator.runtime import Emulator

NAMESPACE = "default"


def _hub_config() -> dict[str, Any]:
    return {
        "JupyterHub": {"spawner_class": KubeSpawner},
        "KubeSpawner": {
            "namespace": NAMESPACE,
            "cmd": ["jupyterhub-singleuser"],
            "start_timeout": 20,
            "http_timeout": 5,
        },
    }


async def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(0.02)


async def test_start_poll_stop_against_emulator(
    hub_app: Any, kube_env: Path, emulator: Emulator
) -> None:
    app = await hub_app(config=_hub_config())
    user = app.users.add(_orm_user(app, "alice"))
    spawner = user.spawners[""]
    assert isinstance(spawner, KubeSpawner) and type(spawner) is KubeSpawner

    t0 = time.monotonic()
    url = await spawner.start()
    elapsed = time.monotonic() - t0

    pods = emulator.objects("Pod", NAMESPACE)
    assert [p["metadata"]["name"] for p in pods] == ["jupyter-alice"]
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"]  # the emulated scheduler bound it
    pod_ip = pod["status"]["podIP"]
    assert pod_ip.startswith("127.")
    # kubespawner returns the URL built from the pod IP the reflector saw
    assert url == f"http://{pod_ip}:8888"
    # the reflector saw Running through its watch, not after a 10 s watch timeout
    assert elapsed < 2, f"spawn took {elapsed:.2f} s"

    assert await spawner.poll() is None  # running

    await spawner.stop()
    await _wait_for(lambda: not emulator.objects("Pod", NAMESPACE))
    # the reflector dropped the pod too, so a new start is possible
    assert spawner.pod_reflector.pods.get(f"{NAMESPACE}/jupyter-alice") is None
    assert await spawner.poll() == 1


def _orm_user(app: Any, name: str) -> Any:
    from jupyterhub import orm

    orm_user = orm.User(name=name)
    app.db.add(orm_user)
    app.db.commit()
    return orm_user


async def test_services_pvcs_and_garbage_collection(
    hub_app: Any, kube_env: Path, emulator: Emulator
) -> None:
    """With services and a PVC on, kubespawner's DELETE/GET/POST dance and GC both work."""
    config = _hub_config()
    config["KubeSpawner"].update(
        {
            "services_enabled": True,
            "storage_pvc_ensure": True,
            "storage_capacity": "1Gi",
            "pod_connect_ip": "{pod_name}-ip.invalid",
        }
    )
    app = await hub_app(config=config)
    user = app.users.add(_orm_user(app, "bob"))
    spawner = user.spawners[""]
    await spawner.start()
    services = emulator.objects("Service", NAMESPACE)
    assert [s["metadata"]["name"] for s in services] == ["jupyter-bob"]
    owner = services[0]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Pod" and owner["name"] == "jupyter-bob"
    pvcs = emulator.objects("PersistentVolumeClaim", NAMESPACE)
    assert [p["metadata"]["name"] for p in pvcs] == ["claim-bob"]
    await spawner.stop()
    await _wait_for(lambda: not emulator.objects("Service", NAMESPACE))  # collected with the pod
    assert emulator.objects("PersistentVolumeClaim", NAMESPACE)  # the user's data stays


async def test_reflector_survives_a_broken_watch(
    hub_app: Any, kube_env: Path, emulator: Emulator
) -> None:
    """A 410 in the middle of a watch makes the reflector relist; it still sees changes."""
    app = await hub_app(config=_hub_config())
    user = app.users.add(_orm_user(app, "carol"))
    spawner = user.spawners[""]
    await spawner.start()
    emulator.call(lambda: emulator.faults.break_watches("pods", "gone"))
    emulator.call(lambda: emulator.faults.fail_next("list", "pods", count=1, code=500))
    await spawner.stop()
    await _wait_for(lambda: spawner.pod_reflector.pods.get(f"{NAMESPACE}/jupyter-carol") is None)
    assert await spawner.poll() == 1
