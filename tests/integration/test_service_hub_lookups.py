"""How often a service asks a real hub (JupyterHub, IAM login) about its callers.

The service side is ``services.web`` (the ``ServiceAuth`` and handlers every service uses)
and ``services.hub_api.HubClient``, served in this process; the hub counts the requests it
answers (its Prometheus metrics, opened to unauthenticated reads in this hub).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from bunshin_helpers import User
from iam_platform import Hub, running_platform
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.httpserver import HTTPServer

from aiinfn_hub.dev.processes import free_port
from aiinfn_hub.services.hub_api import HubClient
from aiinfn_hub.services.web import JsonHandler, ServiceAuth, make_application, serve_http

pytestmark = pytest.mark.slow

PREFIX = "/services/lookups/"
_COUNT = re.compile(
    r'^jupyterhub_request_duration_seconds_count\{[^}]*handler="([^"]+)"[^}]*\}\s+([0-9.e+]+)$',
    re.MULTILINE,
)


class WhoAmI(JsonHandler):
    async def get(self) -> None:
        self.send_json({"name": self.caller().name})


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    def metrics(*_: Any) -> str:
        return "c.JupyterHub.authenticate_prometheus = False\n"

    with running_platform(tmp_path_factory.mktemp("lookups"), extra_config=metrics) as running:
        yield running


@pytest.fixture(scope="module")
def alice(hub: Hub) -> User:
    return User(hub, "alice", "alice-pw")


def answered(hub: Hub, handler: str) -> int:
    """Requests the hub has answered with ``handler`` (a class name) so far."""
    text = requests.get(f"{hub.url}/hub/metrics", timeout=30).text
    return sum(int(float(n)) for h, n in _COUNT.findall(text) if h.endswith(f".{handler}"))


def new_token(hub: Hub, user: str) -> tuple[str, str]:
    """A new API token of ``user``: (its id, the token)."""
    response = hub.admin("POST", f"/users/{user}/tokens", json={"note": "lookup tests"})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


class Service:
    """A service (``services.web``) in this process, with its own ``ServiceAuth``."""

    def __init__(self, hub: Hub, cache_max_age: int) -> None:
        auth = ServiceAuth(
            api_url=hub.api,
            api_token=hub.api_token,
            oauth_client_id="service-lookups",
            access_scopes=set(),
            cache_max_age=cache_max_age,
        )
        app = make_application(PREFIX, [(f"{PREFIX}whoami", WhoAmI)], hub_auth=auth)
        port = free_port()
        self.server: HTTPServer = serve_http(app, "127.0.0.1", port, 1 << 20)
        self.url = f"http://127.0.0.1:{port}{PREFIX}whoami"
        self.http = AsyncHTTPClient(force_instance=True, max_clients=50)

    async def whoami(self, token: str, scheme: str = "token") -> HTTPResponse:
        request = HTTPRequest(self.url, headers={"Authorization": f"{scheme} {token}"})
        response: HTTPResponse = await self.http.fetch(request, raise_error=False)
        return response


@pytest.fixture
async def service(hub: Hub) -> AsyncIterator[Service]:
    running = Service(hub, cache_max_age=300)
    yield running
    running.server.stop()
    running.http.close()


async def test_many_requests_with_one_token_ask_the_hub_once(
    hub: Hub, alice: User, service: Service
) -> None:
    _, token = new_token(hub, "alice")
    before = answered(hub, "SelfAPIHandler")
    burst = await asyncio.gather(*(service.whoami(token) for _ in range(20)))  # none cached yet
    after_burst = answered(hub, "SelfAPIHandler")
    later = [await service.whoami(token, scheme) for scheme in ("token", "Bearer") * 10]
    assert [r.code for r in burst + later] == [200] * 40, [r.body for r in burst + later]
    assert {r.body for r in burst + later} == {b'{"name": "alice"}'}
    assert after_burst - before == 1  # the burst shared one lookup
    assert answered(hub, "SelfAPIHandler") - before == 1  # and the later ones the cache


async def test_an_unknown_token_is_refused_and_asked_once(hub: Hub, service: Service) -> None:
    before = answered(hub, "SelfAPIHandler")
    answers = await asyncio.gather(*(service.whoami("not-a-token") for _ in range(10)))
    assert {r.code for r in answers} == {403}
    assert answered(hub, "SelfAPIHandler") - before == 1


async def test_a_revoked_token_stops_working_within_the_cache_age(hub: Hub, alice: User) -> None:
    age = 2
    service = Service(hub, cache_max_age=age)
    try:
        token_id, token = new_token(hub, "alice")
        assert (await service.whoami(token)).code == 200
        revoked = hub.admin("DELETE", f"/users/alice/tokens/{token_id}")
        assert revoked.status_code == 204, revoked.text
        loop = asyncio.get_running_loop()
        deadline = loop.time() + age + 5  # the bound, and room for a loaded machine
        while (await service.whoami(token)).code == 200:
            assert loop.time() < deadline, f"the revoked token still works after {age} s"
            await asyncio.sleep(0.1)
        assert [(await service.whoami(token)).code for _ in range(3)] == [403] * 3
    finally:
        service.server.stop()
        service.http.close()


async def test_concurrent_reads_of_one_user_share_one_request(hub: Hub, alice: User) -> None:
    client = HubClient(hub.api, hub.api_token)
    before = answered(hub, "UserAPIHandler")
    models = await asyncio.gather(*(client.user("alice") for _ in range(10)))
    assert {m["name"] for m in models} == {"alice"}
    models[0]["name"] = "changed"  # each caller has its own copy
    assert models[1]["name"] == "alice"
    assert answered(hub, "UserAPIHandler") - before == 1
    await client.user("alice")  # never kept: a later read asks again
    assert answered(hub, "UserAPIHandler") - before == 2


def test_the_default_cache_age_is_a_minute(tmp_path: Path) -> None:
    trait = ServiceAuth.class_traits()["cache_max_age"]
    assert trait.default_value == 60
