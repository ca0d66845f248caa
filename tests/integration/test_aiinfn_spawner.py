"""AIInfnSpawner in a real JupyterHub app against the emulated cluster (examples/*.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hub_helpers import add_user, until
from jupyterhub.tests.utils import api_request

from aiinfn_hub.dev.emulator.resources import by_kind
from aiinfn_hub.dev.emulator.runtime import Emulator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NS = "jupyterhub"


def _form(**fields: str) -> dict[str, list[str]]:
    return {k: [v] for k, v in fields.items()}


async def _free(app: Any, user: Any, model: str) -> int:
    token = user.new_api_token()
    response = await api_request(
        app, "aiinfn", "accelerators", headers={"Authorization": f"token {token}"}
    )
    assert response.status_code == 200, response.text
    return int(next(m["free"] for m in response.json() if m["name"] == model))


async def test_form_lists_models_with_live_counts(hub: Any, emulator: Emulator) -> None:
    alice = add_user(hub, "alice", "cms")
    html = await alice.spawner.get_options_form()
    assert 'name="accelerator"' in html and 'value="none"' in html
    assert "NVIDIA Tesla T4 16 GB" in html and "4 of 4 free" in html and "server-1 (4/4)" in html
    assert "NVIDIA A100 SXM4 80 GB" not in html  # not among cms's accelerators
    assert 'value="qml"' not in html  # image limited to the qml project
    # works without JavaScript: every choice is a plain input inside a labelled fieldset
    assert html.count("<fieldset") == 4 and html.count("<legend") == 4
    assert 'for="cpu"' in html and 'id="cpu"' in html
    # the scratch disk: sizes from the configuration, and the warning that it is wiped
    assert 'name="scratch"' in html and '<option value="200Gi"' in html
    assert "Wiped when the server stops" in html


async def test_form_post_spawns_a_gpu_pod_and_counts_follow(hub: Any, emulator: Emulator) -> None:
    alice = add_user(hub, "alice", "ml-infn")
    spawner = alice.spawner
    assert await _free(hub, alice, "t4") == 4
    options = spawner.run_options_from_form(
        _form(image="cuda-ml", cpu="4", memory="16Gi", accelerator="t4", count="2", server="")
    )
    spawner.user_options = options
    await spawner.start()
    pod = emulator.objects("Pod", NS)[0]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "harbor.cloud.infn.it/ai-infn/cuda-ml:2026.11"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["nodeName"] == "server-1" and pod["status"]["phase"] == "Running"
    assert pod["spec"]["priorityClassName"] == "notebook"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["labels"]["aiinfn.infn.it/accelerator"] == "t4"
    assert spawner.user_options["accelerator"] == "t4"
    assert await _free(hub, alice, "t4") == 2
    await spawner.stop()
    await until(lambda: not emulator.objects("Pod", NS))
    assert await _free(hub, alice, "t4") == 4


async def test_second_user_is_refused_when_nothing_is_free(hub: Any, emulator: Emulator) -> None:
    alice = add_user(hub, "alice", "ml-infn")
    bob = add_user(hub, "bob", "ml-infn")
    alice.spawner.user_options = {"image": "cuda-ml", "accelerator": "a30", "count": 2}
    await alice.spawner.start()
    bob.spawner.user_options = {"image": "cuda-ml", "accelerator": "a30", "count": 1}
    with pytest.raises(Exception) as exc:
        await bob.spawner.start()
    assert "no server has 1 a30 free right now" in str(exc.value.log_message)
    assert [p["metadata"]["name"] for p in emulator.objects("Pod", NS)] == ["jupyter-alice"]


async def test_rest_api_with_bad_options_gets_400_and_no_pod(hub: Any, emulator: Emulator) -> None:
    add_user(hub, "carol", "cms")
    response = await api_request(
        hub,
        "users",
        "carol",
        "server",
        method="post",
        data=json.dumps({"image": "evil/miner:latest", "cpu": 64}),
    )
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert message.startswith("image 'evil/miner:latest' is not available to you"), message
    assert emulator.objects("Pod", NS) == []
    # the refusal was the REST caller's: the user's next form shows no error
    assert 'role="alert"' not in await hub.users["carol"].spawner.get_options_form()


async def _spawn_page(app: Any, name: str, *groups: str) -> tuple[Any, dict[str, Any], str]:
    """Log in through the hub's login page and fetch the spawn form, as a browser would."""
    from bs4 import BeautifulSoup
    from jupyterhub.tests.utils import async_requests, public_host

    user = add_user(app, name, *groups)
    cookies = await app.login_user(name)
    response = await async_requests.get(
        public_host(app) + app.hub.base_url + "spawn", cookies=cookies
    )
    response.raise_for_status()
    form = BeautifulSoup(response.text, "html.parser").find("form")
    assert form is not None, response.text
    return user, cookies, public_host(app) + str(form["action"])


async def test_a_browser_form_post_starts_the_server(hub: Any, emulator: Emulator) -> None:
    from jupyterhub.tests.utils import async_requests

    user, cookies, action = await _spawn_page(hub, "erin", "ml-infn")
    response = await async_requests.post(
        action,
        cookies=cookies,
        data={
            "image": "cuda-ml",
            "cpu": "4",
            "memory": "16Gi",
            "accelerator": "a30",
            "count": "1",
            "server": "",
        },
    )
    response.raise_for_status()
    await until(lambda: emulator.objects("Pod", NS))
    pod = emulator.objects("Pod", NS)[0]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert user.spawner.user_options["accelerator"] == "a30"


async def test_a_tampered_form_post_is_refused_with_the_form_again(
    hub: Any, emulator: Emulator
) -> None:
    from jupyterhub.tests.utils import async_requests

    _, cookies, action = await _spawn_page(hub, "mallory", "cms")
    response = await async_requests.post(
        action,
        cookies=cookies,
        data={"image": "base", "cpu": "64", "memory": "4Gi", "accelerator": "none"},
    )
    assert "cpu 64 is not allowed; choose one of: 1, 2, 4, 8" in response.text
    assert 'name="accelerator"' in response.text  # the form is shown again
    assert emulator.objects("Pod", NS) == []


async def test_reserved_nodes_serve_only_their_project(hub: Any, emulator: Emulator) -> None:
    def reserve() -> None:
        import copy

        from aiinfn_hub.dev.emulator.resources import NODES

        node = copy.deepcopy(emulator.store.get(NODES, None, "server-2"))
        node["spec"]["taints"] = [{"key": "reserved", "value": "cms", "effect": "NoSchedule"}]
        emulator.store.update(NODES, node)

    emulator.call(reserve)
    outsider = add_user(hub, "olga", "ml-infn")
    member = add_user(hub, "mario", "cms")
    assert await _free(hub, outsider, "rtx5000") == 0  # not offered: reserved for cms
    assert await _free(hub, member, "rtx5000") == 2
    member.spawner.user_options = {"image": "cuda-ml", "accelerator": "rtx5000"}
    await member.spawner.start()
    pod = emulator.objects("Pod", NS)[0]
    assert pod["spec"]["nodeName"] == "server-2" and pod["status"]["phase"] == "Running"


async def test_a_refusal_keeps_the_last_choice_that_started(hub: Any, emulator: Emulator) -> None:
    """The form pre-fills from the last start that worked, the refused choice is not stored,
    and the stored options (which JupyterHub reuses for a REST start with an empty body) start
    again."""
    from bs4 import BeautifulSoup
    from jupyterhub.tests.utils import async_requests

    user, cookies, action = await _spawn_page(hub, "fanny", "ml-infn")
    spawner = user.spawner
    good = _form(image="cuda-ml", cpu="2", memory="8Gi", accelerator="t4", count="1", server="")
    spawner.user_options = spawner.orm_spawner.user_options = spawner.run_options_from_form(good)
    await spawner.start()
    assert spawner.user_options["profile"] == (
        "ml-infn · NVIDIA Tesla T4 16 GB \u00d71 on server-1 · cuda-ml"
    )
    assert spawner.orm_spawner.user_options["profile"].endswith("on server-1 · cuda-ml")
    await spawner.stop()
    await until(lambda: not emulator.objects("Pod", NS))

    # refused: a pinned server that has no A30
    refused = {k: v[0] for k, v in good.items()} | {"accelerator": "a30", "server": "server-1"}
    response = await async_requests.post(action, cookies=cookies, data=refused)
    assert response.status_code == 400
    page = BeautifulSoup(response.text, "html.parser")
    alert = page.find(id="error-server")
    assert alert is not None and alert["role"] == "alert", response.text
    assert alert.get_text().startswith("server-1 has no NVIDIA A30 24 GB for you")
    assert "HTTP 400" not in alert.get_text()
    # pre-filled with the choice that started, not the refused one
    assert page.find(id="accelerator-t4").has_attr("checked")
    assert page.find(id="server").find("option", selected=True)["value"] == ""
    assert spawner.orm_spawner.user_options["accelerator"] == "t4"
    assert emulator.objects("Pod", NS) == []
    # the error is shown once: a fresh form has none
    again = await async_requests.get(
        public_host_url(hub) + hub.hub.base_url + "spawn", cookies=cookies
    )
    assert 'role="alert"' not in again.text

    # what JupyterHub does for a REST start with an empty body: the stored options, profile
    # included, go back through the validator and start
    spawner.user_options = spawner.orm_spawner.user_options
    await spawner.start()
    pod = emulator.objects("Pod", NS)[0]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    await spawner.stop()


async def test_the_admin_api_shows_the_profile_of_a_server(hub: Any, emulator: Emulator) -> None:
    """The stock admin panel's Profile column reads ``servers[...].user_options.profile``
    (it lists users with ``include_stopped_servers``)."""
    user = add_user(hub, "gina", "cms")
    user.spawner.user_options = {"image": "base", "accelerator": "none"}
    await user.spawner.start()
    response = await api_request(hub, "users", "gina?include_stopped_servers=1")
    assert response.status_code == 200, response.text
    server = response.json()["servers"][""]
    node = emulator.objects("Pod", NS)[0]["spec"]["nodeName"]
    assert server["user_options"]["profile"] == f"cms · CPU only on {node} · base"
    await user.spawner.stop()


def public_host_url(app: Any) -> str:
    from jupyterhub.tests.utils import public_host

    return str(public_host(app))


async def test_templates_expand_to_injective_names_and_plain_text_stays(hub: Any) -> None:
    from aiinfn_hub.platform.names import user_slug

    user = add_user(hub, "dot.user", "cms")
    spawner = user.spawner
    slug = user_slug("dot.user")
    assert slug.startswith("dot-user---")  # not a clean DNS label: a prefix and a hash
    expand = spawner._expand_user_properties
    assert expand("jupyter-{username}") == f"jupyter-{slug}"
    assert expand("{safe_user_server}/{unescaped_username}") == f"{slug}/dot.user"
    assert expand("claim-{username}--{servername}") == f"claim-{slug}"
    assert expand("{{username}} is literal") == "{username} is literal"
    assert expand("/home/jovyan/work-") == "/home/jovyan/work-"  # no field: as it is
    assert spawner.pod_name == f"jupyter-{slug}"


async def test_a_reflector_that_gave_up_is_replaced_and_an_outage_is_no_stop(
    hub: Any, emulator: Emulator
) -> None:
    """kubespawner's pod reflector ends its watch for good after ~50 s of failures; the next
    poll starts a new one. A poll while the cluster does not answer says "still running"
    (JupyterHub stops and forgets servers whose poll fails), and the answer is right again
    once the cluster is back."""
    alice = add_user(hub, "alice", "ml-infn")
    spawner = alice.spawner
    spawner.user_options = {"image": "cuda-ml"}
    await spawner.start()
    assert await spawner.poll() is None
    reflector = spawner.pod_reflector
    reflector.watch_task.cancel()  # as when it gives up: its task is over
    await until(reflector.watch_task.done)

    emulator.faults.fail_next("*", "*", count=10**6, code=503)
    try:
        # unknown: taken as running, not as stopped, poll after poll (the replacement's own
        # first list fails too: that one is replaced at the next poll)
        assert await spawner.poll() is None
        assert await spawner.poll() is None
    finally:
        emulator.faults.clear()
    assert await spawner.poll() is None
    assert spawner.pod_reflector is not reflector
    assert not spawner.pod_reflector.watch_task.done()
    # the new reflector follows the cluster: the pod deleted behind the hub's back is seen
    pod = emulator.objects("Pod", NS)[0]["metadata"]["name"]
    emulator.call(lambda: emulator.store.delete(by_kind("Pod"), NS, pod))
    await until(lambda: spawner.pod_reflector.pods.get(f"{NS}/{pod}") is None)
    assert await spawner.poll() is not None
