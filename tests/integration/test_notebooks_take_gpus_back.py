"""Notebooks first, end to end: Bunshin jobs fill the GPUs, a notebook takes one back at once.

A real hub (IAM login, AIInfnSpawner with notebooks in the ``notebook`` PriorityClass), the
Bunshin service and the emulated cluster (its scheduler preempts as kube-scheduler does, its
Job controller replaces a preempted pod without counting a failure). server-2 has two
RTX 5000 GPUs; cms members may have one each. The cluster also has the interLink virtual node,
offering offloaded jobs four GPUs (``jobs.offload.accelerators`` of the example).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from bunshin_helpers import JOBS_NAMESPACE, User, admit, bunshin_config, wait_for_bunshin
from iam_platform import EXAMPLES, NAMESPACE, Hub, running_platform, wait_for

from aiinfn_hub.config import load_platform_config
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.virtual_node import NAME as VIRTUAL_NODE
from aiinfn_hub.dev.virtual_node import interlink_node

pytestmark = pytest.mark.slow
GPU = {"image": "cuda-ml", "accelerator": "rtx5000", "count": 1}


def _config(emulator: Emulator, platform: Path) -> str:
    return bunshin_config(emulator, platform) + (
        '\nc.AIInfnSpawner.notebook_priority_class = "notebook"\n'
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    virtual = interlink_node(load_platform_config(EXAMPLES / "platform.yaml"))
    with running_platform(
        tmp_path_factory.mktemp("first"), extra_config=_config, extra_nodes=[virtual]
    ) as running:
        wait_for_bunshin(running)
        yield running


def _rtx(user: User) -> dict[str, Any]:
    """What the form's counts say to ``user`` about the RTX 5000s."""
    response = user.session.get(f"{user.hub.url}/hub/api/aiinfn/accelerators", timeout=10)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = next(m for m in response.json() if m["name"] == "rtx5000")
    return found


def _job(user: User, job_id: str) -> dict[str, Any]:
    response = user.call("GET", f"jobs/{job_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def _events(hub: Hub, reason: str) -> list[dict[str, Any]]:
    return [e for e in hub.emulator.objects("Event", JOBS_NAMESPACE) if e.get("reason") == reason]


def _progress(hub: Hub, user: str) -> list[str]:
    """The messages of the user's spawn progress page, followed from the start of the spawn
    until it says ready (or failed)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with requests.get(
            f"{hub.api}/users/{user}/server/progress",
            headers={"Authorization": f"token {hub.api_token}"},
            stream=True,
            timeout=90,
        ) as response:
            if response.status_code in (400, 404):  # the spawn has not begun yet
                time.sleep(0.05)
                continue
            assert response.status_code == 200, response.text
            messages = []
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[len("data:") :])
                    messages.append(str(event.get("message", "")))
                    if event.get("ready") or event.get("failed"):
                        break
            return messages
    raise AssertionError(f"{user}'s spawn did not begin within a minute")


def _start(user: User, options: dict[str, Any]) -> requests.Response:
    return user.hub.admin("POST", f"/users/{user.name}/server", json=options)


def _ready(user: User) -> bool:
    return bool(user.hub.admin_get(f"/users/{user.name}")["servers"].get("", {}).get("ready"))


def test_a_notebook_takes_a_gpu_from_a_batch_job_which_runs_again_later(
    hub: Hub, tmp_path: Path
) -> None:
    alice, carol = User(hub, "alice", "alice-pw"), User(hub, "carol", "carol-pw")
    frank, bob = User(hub, "frank", "frank-pw"), User(hub, "bob", "bob-pw")
    alice.start_server({"image": "cuda-ml"})
    # alice's two jobs take both RTX 5000s, the second one started last; they run until the
    # test lets them finish (their pods are local processes: a file on this machine)
    release = tmp_path / "jobs-may-finish"
    command = ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.2; done"]
    jobs = []
    for name in ("first", "second"):
        body = {"command": command, "name": name, "accelerator": {"name": "rtx5000"}}
        response = alice.call("POST", "jobs", json=body)
        assert response.status_code == 201, response.text
        jobs.append(response.json()["id"])
        admit(hub, jobs[-1])
        wait_for(lambda: _job(alice, jobs[-1])["status"] == "running", 60, f"job {name} to run")
    first, second = jobs
    counts = _rtx(carol)
    assert (counts["free"], counts["batch"]) == (0, 2)

    # a user's own limit still holds: a cms member may have one GPU, batch jobs or not
    # (frank's try: a failed spawn would show on carol's next progress page, as JupyterHub does)
    refused = _start(frank, {**GPU, "count": 2})
    assert refused.status_code == 400 and "between 1 and 1" in refused.text
    assert not [
        p for p in hub.emulator.objects("Pod", NAMESPACE) if "frank" in p["metadata"]["name"]
    ]

    # carol's notebook gets a GPU: the most recently started job pod makes room, and her
    # progress page says so
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(_start, carol, GPU)
        messages = _progress(hub, "carol")
        assert started.result().status_code in (201, 202)
    assert any("A batch job is making room for you on server-2" in m for m in messages), messages
    wait_for(lambda: _ready(carol), 90, "carol's notebook")
    # the scheduler deletes its victim; the service has recorded it on the Job meanwhile
    wait_for(lambda: _job(alice, second)["preemptions"], 30, "the preemption on record")
    view = _job(alice, second)
    assert view["status"] == "queued" and "preempted by a notebook at" in view["reason"]
    assert len(view["preemptions"]) == 1 and view["preemptions"][0]["lostSeconds"] >= 0
    assert not _job(alice, first)["preemptions"] and _job(alice, first)["status"] == "running"
    assert _events(hub, "Preempted"), "the victim's Preempted event"
    counts = _rtx(frank)
    assert (counts["free"], counts["batch"]) == (0, 1)

    # frank takes the other one; then both GPUs are notebooks': nobody else can have one
    assert _start(frank, GPU).status_code in (201, 202)
    wait_for(lambda: _ready(frank), 90, "frank's notebook")
    counts = _rtx(bob)
    assert (counts["free"], counts["batch"]) == (0, 0)
    refused = _start(bob, {**GPU, "image": "cuda-ml"})
    assert refused.status_code == 400 and "no server has 1 rtx5000 free" in refused.text

    # the notebooks stop: both jobs run again and succeed, no failure counted
    for user in (carol, frank):
        assert hub.admin("DELETE", f"/users/{user.name}/server").status_code in (202, 204)
    wait_for(lambda: _job(alice, second)["status"] == "running", 90, "the second job again")
    release.touch()
    for job_id in jobs:
        wait_for(
            lambda j=job_id: _job(alice, j)["status"] == "succeeded", 120, f"{job_id} to finish"
        )
    for job_id in jobs:
        (manifest,) = [
            j
            for j in hub.emulator.objects("Job", JOBS_NAMESPACE)
            if j["metadata"]["name"] == job_id
        ]
        assert int((manifest.get("status") or {}).get("failed") or 0) == 0
    assert _job(alice, second)["preemptions"]  # the finished job keeps what happened to it


def _running_on(user: User, job_id: str) -> list[tuple[str, bool]]:
    """(node, offloaded) of the job's running pods."""
    pods = _job(user, job_id)["pods"]
    return [(p["node"], p["offloaded"]) for p in pods if p["phase"] == "Running"]


def test_an_offloaded_job_goes_to_a_virtual_node_when_a_notebook_takes_its_gpu(hub: Hub) -> None:
    bob, carol = User(hub, "bob", "bob-pw"), User(hub, "carol", "carol-pw")
    # the notebooks of before are gone, their GPUs free
    wait_for(lambda: _rtx(bob)["free"] == 2, 90, "both RTX 5000s free")
    # bob's project may offload; no GPU for his server (without options JupyterHub would reuse
    # those of his refused start above)
    bob.start_server({"accelerator": "none", "image": "cuda-ml"})
    # offloaded jobs run here while there is room: both take server-2's RTX 5000s
    jobs = []
    for name in ("early", "late"):
        body = {
            "command": ["sleep", "600"],
            "name": name,
            "accelerator": {"name": "rtx5000"},
            "offload": True,
        }
        response = bob.call("POST", "jobs", json=body)
        assert response.status_code == 201, response.text
        jobs.append(response.json()["id"])
        admit(hub, jobs[-1])
        wait_for(lambda: _running_on(bob, jobs[-1]), 60, f"job {name} to run")
        assert _running_on(bob, jobs[-1]) == [("server-2", False)]
        assert _job(bob, jobs[-1])["reason"] == ""
    early, late = jobs
    try:
        # carol's notebook takes a GPU back; the late job's new pod goes to the virtual node
        assert _start(carol, GPU).status_code in (201, 202)
        wait_for(lambda: _ready(carol), 90, "carol's notebook")
        wait_for(lambda: _running_on(bob, late), 60, "the late job to run again")
        assert _running_on(bob, late) == [(VIRTUAL_NODE, True)]
        view = _job(bob, late)
        assert view["status"] == "running"
        assert view["reason"].startswith(
            f"running again, offloaded to virtual node {VIRTUAL_NODE}, after a preemption at"
        )
        assert len(view["preemptions"]) == 1
        assert _running_on(bob, early) == [("server-2", False)]
        # the virtual node's GPUs are never offered to notebooks
        counts = _rtx(bob)
        assert (counts["free"], counts["batch"]) == (0, 1)
    finally:
        for job_id in jobs:
            bob.call("DELETE", f"jobs/{job_id}")
        hub.admin("DELETE", "/users/carol/server")
