"""Restarts and outages lose nothing (issue 18), with the real hub, proxy, provider and the
emulated cluster: the proxy runs on its own, as z2jh runs it, and tokens live 5 seconds, so
renewals happen all the time and any break in them shows.

Each test says what must still be true afterwards and waits for that state (never for a
guessed time): the waits are long upper bounds that end as soon as the condition holds.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from bunshin_helpers import User, admit, status_of, wait_for_bunshin
from iam_platform import (
    NAMESPACE,
    Hub,
    answers,
    secret_in_step,
    sign_in,
    spawn,
    start_hub_again,
    stop,
    wait_for,
)

from aiinfn_hub.dev.emulator.resources import by_kind

pytestmark = pytest.mark.slow

WAIT = 90  # seconds: an upper bound for conditions that take a few seconds on an idle machine


@pytest.fixture
def hub(fast_tokens_hub: Hub) -> Hub:
    """5-second tokens, the proxy on its own, the Bunshin service (the session's hub)."""
    return fast_tokens_hub


def _pod(hub: Hub, user: str) -> dict[str, Any] | None:
    name = f"jupyter-{user}"
    return next(
        (p for p in hub.emulator.objects("Pod", NAMESPACE) if p["metadata"]["name"] == name),
        None,
    )


def _running_uid(hub: Hub, user: str) -> str:
    pod = _pod(hub, user)
    assert pod is not None, f"{user}'s pod is gone"
    assert pod["status"]["phase"] == "Running", pod["status"]
    return str(pod["metadata"]["uid"])


def _server_answers(hub: Hub, user: str) -> bool:
    """The user's server answers through the proxy (its unauthenticated version endpoint)."""
    try:
        response = requests.get(f"{hub.url}/user/{user}/api", timeout=10, allow_redirects=False)
    except requests.RequestException:
        return False
    return response.status_code == 200 and "version" in response.json()


def test_a_hub_restart_keeps_servers_routes_jobs_counts_and_token_renewals(hub: Hub) -> None:
    alice = User(hub, "alice", "alice-pw")
    alice.start_server({"image": "cuda-ml", "accelerator": "t4", "count": 1})
    try:
        uid = _running_uid(hub, "alice")
        assert _server_answers(hub, "alice")
        wait_for_bunshin(hub)
        submitted = alice.call("POST", "jobs", json={"command": ["sleep", "600"]})
        assert submitted.status_code == 201, submitted.text
        job = submitted.json()["id"]
        admit(hub, job)
        wait_for(lambda: status_of(alice, job) == "running", WAIT, "the job to run")
        t4_free = _free(alice.session, hub, "t4")  # the server's GPU and the job's in use

        hub.process.stop(grace=30)  # SIGTERM, as a helm upgrade or a node drain sends
        assert not answers(f"{hub.api}/")
        # while the hub is away the server runs on and the proxy still routes to it
        assert _running_uid(hub, "alice") == uid
        assert _server_answers(hub, "alice")
        secret_before = hub.token_secret("alice")
        assert secret_before

        start_hub_again(hub, WAIT)
        server = hub.admin_get("/users/alice")["servers"][""]
        assert server["ready"], server
        assert _running_uid(hub, "alice") == uid, "the server was started again"
        assert _server_answers(hub, "alice")
        # the form's counts are right again (the GPUs of the server and the job still in use)
        wait_for(lambda: _free(alice.session, hub, "t4") == t4_free, WAIT, "the counts")
        # the job runs on, listed as before, with its logs
        wait_for_bunshin(hub)
        assert status_of(alice, job) == "running"
        assert alice.call("GET", f"jobs/{job}/logs").status_code == 200

        # the restarted hub goes on renewing the token the server's Secret holds
        def renewed() -> bool:
            state = secret_in_step(hub, "alice")
            return bool(state) and state["storage_token"]["access_token"] != secret_before

        wait_for(renewed, WAIT, "the restarted hub to renew alice's token Secret")
        assert _running_uid(hub, "alice") == uid
        alice.call("DELETE", f"jobs/{job}")
    finally:
        stop(hub, "alice")


def test_an_iam_outage_logs_nobody_out_and_renewals_resume_after_it(hub: Hub) -> None:
    session, page = sign_in(hub, "bob", "bob-pw")
    assert page.status_code == 200
    spawn(hub, "bob")
    provider_stopped = False
    try:
        uid = _running_uid(hub, "bob")
        first = wait_for(lambda: secret_in_step(hub, "bob"), WAIT, "bob's token Secret")

        hub.provider.stop()
        provider_stopped = True
        # the 5-second tokens expire while the provider is away
        wait_for(
            lambda: hub.auth_state("bob")["expires_at"] < time.time() - 1,
            WAIT,
            "bob's tokens to expire during the outage",
        )
        home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=30)
        assert home.status_code == 200, "an IAM outage alone logged bob out"
        assert _running_uid(hub, "bob") == uid
        assert "IAM did not answer the renewal for bob" in hub.log()

        hub.provider.start()  # its grants and refresh tokens outlive the restart
        provider_stopped = False

        def resumed() -> bool:
            state = secret_in_step(hub, "bob")
            return (
                bool(state)
                and state["access_token"] != first["access_token"]
                and state["expires_at"] > time.time()
            )

        wait_for(resumed, WAIT, "renewals to resume once IAM is back")
        home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=30)
        assert home.status_code == 200
        assert _running_uid(hub, "bob") == uid
    finally:
        if provider_stopped:
            hub.provider.start()
        stop(hub, "bob")


def _free(session: requests.Session, hub: Hub, model: str) -> int:
    """Free units of ``model`` as the spawn form's script reads them (the hub's informers)."""
    answer = session.get(f"{hub.url}/hub/api/aiinfn/accelerators", timeout=30)
    assert answer.status_code == 200, answer.text
    return int(next(m["free"] for m in answer.json() if m["name"] == model))


def _gpu_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "Tesla-T4"},
            "containers": [
                {"name": "c", "image": "x:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        },
    }


def test_a_kubernetes_api_outage_keeps_pages_up_fails_spawns_clearly_and_recovers(
    hub: Hub,
) -> None:
    session, page = sign_in(hub, "frank", "frank-pw")
    assert page.status_code == 200
    before = _free(session, hub, "t4")
    emulator, faults = hub.emulator, hub.emulator.faults
    # every call fails, and every open watch ends with 410 Gone
    emulator.call(lambda: faults.fail_next("*", "*", count=10**9, code=503))
    emulator.call(lambda: faults.break_watches("*", "gone"))
    try:
        # pages keep answering, from what the hub knows
        assert session.get(f"{hub.url}/hub/home", timeout=30).status_code == 200
        assert session.get(f"{hub.url}/hub/spawn", timeout=30).status_code == 200
        assert _free(session, hub, "t4") == before
        # a spawn meanwhile fails at once, saying to try again, and leaves nothing pending
        started = session.post(
            f"{hub.url}/hub/api/users/frank/server",
            json={},
            headers={"X-XSRFToken": session.cookies.get("_xsrf", "")},
            timeout=60,
        )
        assert started.status_code == 503, started.text
        assert "try again in a minute" in started.json()["message"]
        server = hub.admin_get("/users/frank")["servers"].get("")
        assert server is None or not (server["pending"] or server["ready"]), server
        # a GPU pod appears while the hub cannot watch
        emulator.call(lambda: emulator.store.create(by_kind("Pod"), _gpu_pod("elsewhere")))
    finally:
        emulator.call(faults.clear)
    # the informers recover: the counts include what changed during the outage, and a spawn works
    wait_for(lambda: _free(session, hub, "t4") == before - 1, WAIT, "the counts to catch up")
    spawn(hub, "frank")
    stop(hub, "frank")


def test_a_spawn_cut_by_a_hub_restart_ends_running_or_stopped_never_pending(hub: Hub) -> None:
    """The hub stops while carol's pod is being created; kubespawner's request reaches the
    cluster anyway. The restarted hub finds the pod: the server is ready and answers, or (had
    the pod not come) not running and startable again; never left pending."""
    emulator, faults = hub.emulator, hub.emulator.faults
    _, page = sign_in(hub, "carol", "carol-pw")
    assert page.status_code == 200
    emulator.call(lambda: faults.add_latency("create", "pods", 5))
    try:
        started = hub.admin("POST", "/users/carol/server", json={})
        assert started.status_code == 202, started.text
        assert hub.admin_get("/users/carol")["servers"][""]["pending"] == "spawn"
        hub.process.stop(grace=30)
    finally:
        emulator.call(lambda: faults.add_latency("create", "pods", 0))
    try:
        start_hub_again(hub, WAIT)

        def settled() -> dict[str, Any] | None:
            server = hub.admin_get("/users/carol")["servers"].get("")
            if server is None:
                return {"ready": False}
            return None if server["pending"] else server

        server = wait_for(settled, WAIT, "carol's server to be ready or stopped")
        if server["ready"]:
            assert _running_uid(hub, "carol")
            wait_for(lambda: _server_answers(hub, "carol"), WAIT, "carol's server to answer")
            # what the cut start chose is kept (the REST body was empty), its profile line
            # naming the node the pod runs on
            node = (_pod(hub, "carol") or {})["spec"]["nodeName"]
            options = hub.admin_get("/users/carol")["servers"][""]["user_options"]
            assert options["image"] and options["accelerator"], options
            assert options["profile"].endswith(f" on {node} · {options['image']}"), options
        else:
            spawn(hub, "carol")
    finally:
        stop(hub, "carol")
