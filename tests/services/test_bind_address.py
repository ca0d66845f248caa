"""Where a service listens: its URL's host, or the pod's own addresses in the hub's pod."""

from __future__ import annotations

from aiinfn_hub.services.web import bind_address


def test_the_service_url_gives_host_and_port() -> None:
    assert bind_address({"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101"}) == (
        "127.0.0.1",
        10101,
    )


def test_in_the_hub_pod_it_binds_the_pods_addresses_not_the_service_name() -> None:
    env = {"JUPYTERHUB_SERVICE_URL": "http://hub:10101", "AIINFN_SERVICE_BIND_HOST": "0.0.0.0"}
    assert bind_address(env) == ("0.0.0.0", 10101)
