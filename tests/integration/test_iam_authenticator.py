"""IAMAuthenticator inside a JupyterHub app (MockHub), against the real local provider: token
renewal with rotation under concurrency, token exchange, the binding of hub users to their IAM
identity, logout's revocation, configuration errors."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from iam_platform import (
    CLIENT_ID,
    STORAGE_AUDIENCE,
    free_ports,
    provider_code_flow,
    provider_settings,
)
from jupyterhub import orm
from jupyterhub.crypto import CryptKeeper
from tornado import web

from aiinfn_hub.auth import IAMAuthenticator, bindings
from aiinfn_hub.auth.tokens import secret_values
from aiinfn_hub.dev.oidc import LocalOIDCProvider, OIDCClient
from aiinfn_hub.dev.processes import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOIDCProvider]:
    # tokens outlive any slow test (renewals are forced by setting expires_at to 0), so "fresh"
    # stays fresh on a loaded machine
    settings = provider_settings(free_port(), secrets.token_urlsafe(16), access_token_ttl=3600)
    with LocalOIDCProvider(settings, tmp_path_factory.mktemp("oidc")) as running:
        yield running


@pytest.fixture
def client(provider: LocalOIDCProvider) -> OIDCClient:
    return provider.settings.clients[0]


@pytest.fixture
def crypt_keys() -> Iterator[None]:
    keeper = CryptKeeper.instance()
    before = keeper.keys
    keeper.keys = [os.urandom(32)]
    yield
    keeper.keys = before


@pytest.fixture
async def app(
    hub_app: Any, provider: LocalOIDCProvider, client: OIDCClient, tmp_path: Path, crypt_keys: None
) -> AsyncIterator[Any]:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(f"  {client.client_secret}\n")
    # MockHub draws the hub's, the proxy's and its API's ports one after the other, and can
    # draw the same one twice ("Address already in use"): give it three distinct ones. Its
    # proxy pid file is in the working directory by default, where a hub started by another
    # test run takes it for a stale proxy of its own and kills it: keep it in tmp_path.
    hub_port, proxy_port, proxy_api_port = free_ports(3, exclude=[provider.settings.port])
    hub = await hub_app(
        config={
            "JupyterHub": {
                "authenticator_class": IAMAuthenticator,
                "hub_port": hub_port,
                "bind_url": f"http://127.0.0.1:{proxy_port}/@/space%20word/",
                "cookie_secret_file": str(tmp_path / "cookie_secret"),
            },
            "ConfigurableHTTPProxy": {
                "api_url": f"http://127.0.0.1:{proxy_api_port}",
                "pid_file": str(tmp_path / "proxy.pid"),
            },
            "IAMAuthenticator": {
                "issuer": provider.issuer,
                "client_id": CLIENT_ID,
                "client_secret_file": str(secret_file),
                "allowed_groups": {"cms"},
                "storage_token_audience": STORAGE_AUDIENCE,
                "platform_config_file": str(EXAMPLES / "platform.yaml"),
                "token_refresh_margin": 30,
            },
        }
    )
    yield hub


async def _auth_model(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient, login: str, password: str
) -> dict[str, Any]:
    """The auth model of a real sign-in at the provider as ``login``."""
    token_info = await asyncio.to_thread(provider_code_flow, provider, client, login, password)
    model: dict[str, Any] = await app.authenticator._token_to_auth_model(token_info)
    return model


async def _logged_in(app: Any, provider: LocalOIDCProvider, client: OIDCClient) -> Any:
    """alice with real tokens from the provider in her encrypted auth_state (as a user who
    signed in before bindings were kept: no binding row)."""
    model = await _auth_model(app, provider, client, "alice", "alice-pw")
    orm_user = orm.User.find(app.db, "alice") or orm.User(name="alice")
    app.db.add(orm_user)
    app.db.commit()
    user = app.users[orm_user.id]
    await user.save_auth_state(model["auth_state"])
    return user


async def test_client_secret_comes_from_the_file_and_discovery_at_start(
    app: Any, client: OIDCClient
) -> None:
    authenticator = app.authenticator
    assert authenticator.client_secret == client.client_secret  # whitespace stripped
    endpoints = await authenticator.endpoints()
    assert endpoints.supports_token_exchange
    assert authenticator.token_url == endpoints.token_endpoint
    # projects exist as groups once the start-up task has run
    await authenticator._startup
    assert orm.Group.find(app.db, "qml").properties["displayName"] == "Quantum ML"


async def test_fresh_tokens_are_left_alone(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    user = await _logged_in(app, provider, client)
    before = await user.get_auth_state()
    assert await app.authenticator.refresh_user(user) is True
    assert await user.get_auth_state() == before


async def test_concurrent_renewals_use_the_rotating_refresh_token_once(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    """Five renewals at once (requests and spawner polls): one renewal, no replayed token, so
    the provider does not revoke the grant as it does on refresh token reuse."""
    user = await _logged_in(app, provider, client)
    state = await user.get_auth_state()
    state["expires_at"] = 0  # due now
    await user.save_auth_state(state)
    results = await asyncio.gather(*(app.authenticator.refresh_user(user) for _ in range(5)))
    models = [r for r in results if isinstance(r, dict)]
    assert len(models) == 1 and results.count(True) == 4
    renewed = await user.get_auth_state()
    assert renewed["refresh_token"] != state["refresh_token"]
    assert renewed["storage_token"]["access_token"] != state["storage_token"]["access_token"]
    assert models[0]["groups"] == ["cms", "cms:analysis"]
    # the grant is intact: the renewed refresh token works again
    renewed["expires_at"] = 0
    await user.save_auth_state(renewed)
    again = await app.authenticator.refresh_user(user)
    assert isinstance(again, dict)
    assert again["auth_state"]["refresh_token"] != renewed["refresh_token"]


async def test_a_refused_refresh_token_is_not_retried(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    user = await _logged_in(app, provider, client)
    state = await user.get_auth_state()
    state["expires_at"] = 0
    state["refresh_token"] = "not-a-refresh-token"
    await user.save_auth_state(state)
    log = provider.log_path.read_text()
    assert await app.authenticator.refresh_user(user) is False
    grant_errors = provider.log_path.read_text()[len(log) :].count("grant.error")
    assert grant_errors == 1
    assert await app.authenticator.refresh_user(user) is False
    assert provider.log_path.read_text()[len(log) :].count("grant.error") == 1


async def test_storage_token_is_none_when_the_exchange_is_refused(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    app.authenticator.storage_token_scopes = ["admin"]  # not allowed for the audience
    user = await _logged_in(app, provider, client)
    state = await user.get_auth_state()
    assert state["storage_token"] is None
    assert app.authenticator.storage_token(state) is None


async def test_end_session_url_names_the_client_not_a_token(app: Any) -> None:
    app.authenticator.post_logout_redirect_url = "http://127.0.0.1:1/hub/login"
    url = await app.authenticator.end_session_url()
    assert url.startswith(app.authenticator.issuer + "/session/end?client_id=aiinfn-hub")
    assert "post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fhub%2Flogin" in url
    app.authenticator.end_session_logout = False
    assert await app.authenticator.end_session_url() == ""


def test_configuration_problems_are_listed_with_what_to_do(crypt_keys: None) -> None:
    authenticator = IAMAuthenticator(subgroup_separator="/")
    problems = authenticator.config_problems()
    assert any("IAMAuthenticator.issuer is not set" in p for p in problems)
    assert any("client_id" in p for p in problems)
    assert any("client_secret_file" in p for p in problems)
    assert any("subgroup_separator" in p for p in problems)
    CryptKeeper.instance().keys = []
    assert any("openssl rand -hex 32" in p for p in authenticator.config_problems())


def test_an_unreadable_secret_file_stops_the_hub_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"cannot read .*missing"):
        _ = IAMAuthenticator(client_secret_file=str(tmp_path / "missing")).client_secret


def test_members_of_any_project_are_allowed_by_default(crypt_keys: None) -> None:
    path = str(EXAMPLES / "platform.yaml")
    authenticator = IAMAuthenticator(platform_config_file=path)
    assert authenticator.allowed_groups == {"ml-infn", "cms", "lhcb-flashsim", "qml", "fpga-lab"}
    narrowed = IAMAuthenticator(platform_config_file=path, allowed_groups={"cms"})
    assert narrowed.allowed_groups == {"cms"}
    assert IAMAuthenticator().allowed_groups == set()


def _find_user(app: Any) -> Any:
    """What the login handler passes: the hub's user of a name, or None."""
    return lambda name: app.users[name] if orm.User.find(app.db, name) else None


@contextlib.contextmanager
def _captured(log: logging.Logger) -> Iterator[list[str]]:
    """The messages ``log`` emits inside the block."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Capture(logging.DEBUG)
    log.addHandler(handler)
    try:
        yield lines
    finally:
        log.removeHandler(handler)


async def test_another_iam_identity_cannot_take_an_existing_username(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    """alice signed in before bindings existed: her auth_state's sub is her identity; an IAM
    account "alice-again" whose preferred_username is alice is refused, with a log line."""
    authenticator = app.authenticator
    await _logged_in(app, provider, client)
    other = await _auth_model(app, provider, client, "alice-again", "again-pw")
    assert other["name"] == "alice"
    with _captured(authenticator.log) as lines, pytest.raises(web.HTTPError) as refused:
        await authenticator.bind_identity(app.db, other, _find_user(app))
    assert refused.value.status_code == 403
    assert "Contact the platform administrators" in refused.value.jupyterhub_message
    (line,) = [x for x in lines if x.startswith("Refusing a login as alice")]
    assert "'alice'" in line and "'alice-again'" in line and "rebind_users" in line
    assert all(t not in line for t in secret_values(other["auth_state"]))
    assert bindings.find(app.db, "alice") is None  # nothing recorded by a refused login

    # alice herself binds, after which the row decides
    mine = await _auth_model(app, provider, client, "alice", "alice-pw")
    await authenticator.bind_identity(app.db, mine, _find_user(app))
    assert bindings.find(app.db, "alice").subject == "alice"  # type: ignore[union-attr]
    with pytest.raises(web.HTTPError):
        await authenticator.bind_identity(app.db, other, _find_user(app))

    # admins list alice: the next login with the new identity re-binds, and says so
    authenticator.rebind_users = {"Alice"}  # normalized as the hub does
    with _captured(authenticator.log) as lines:
        await authenticator.bind_identity(app.db, other, _find_user(app))
    assert any(x.startswith("Re-binding alice from IAM subject 'alice'") for x in lines)
    assert bindings.find(app.db, "alice").subject == "alice-again"  # type: ignore[union-attr]


async def test_a_new_user_is_bound_at_the_first_login(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    model = await _auth_model(app, provider, client, "alice-again", "again-pw")
    await app.authenticator.bind_identity(app.db, model, _find_user(app))
    row = bindings.find(app.db, "alice")
    assert row is not None and row.subject == "alice-again"
    assert row.issuer == provider.issuer


async def test_two_first_logins_racing_for_one_username_bind_only_one(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    """Two IAM accounts whose preferred_username is alice sign in for the first time at once:
    the second to decide sees the first one's binding (no check-then-write across an await).
    The hub user exists with an auth_state from before bindings that names no subject, so each
    login awaits its decryption before deciding: the two interleave."""
    orm_user = orm.User(name="alice")
    app.db.add(orm_user)
    app.db.commit()
    await app.users[orm_user.id].save_auth_state({"note": "from before bindings"})
    mine = await _auth_model(app, provider, client, "alice", "alice-pw")
    other = await _auth_model(app, provider, client, "alice-again", "again-pw")
    results = await asyncio.gather(
        app.authenticator.bind_identity(app.db, mine, _find_user(app)),
        app.authenticator.bind_identity(app.db, other, _find_user(app)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, web.HTTPError)]
    assert len(refused) == 1 and refused[0].status_code == 403, results
    winner = "alice" if results[0] is None else "alice-again"
    assert bindings.find(app.db, "alice").subject == winner  # type: ignore[union-attr]


async def test_logout_revokes_the_refresh_token_and_stops_renewals(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    authenticator = app.authenticator
    user = await _logged_in(app, provider, client)
    before = await user.get_auth_state()
    await authenticator.sign_out(user)
    after = await user.get_auth_state()
    assert secret_values(after) == [] and "token_response" not in after
    assert after["oauth_user"]["preferred_username"] == "alice"  # claims stay
    # the provider refuses the old refresh token
    refused = requests.post(
        provider.discovery()["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]},
        auth=(CLIENT_ID, client.client_secret),
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # no renewal any more, even if a renewal under way at logout wrote tokens back
    assert await authenticator.refresh_user(user) is False
    await user.save_auth_state(before)
    assert await authenticator.refresh_user(user) is False
    assert secret_values(await user.get_auth_state()) == []
    # until the next login
    model = await _auth_model(app, provider, client, "alice", "alice-pw")
    await authenticator.bind_identity(app.db, model, _find_user(app))
    await user.save_auth_state(model["auth_state"])
    assert await authenticator.refresh_user(user) is True


async def test_logout_does_not_wait_for_a_provider_that_does_not_answer(
    app: Any, provider: LocalOIDCProvider, client: OIDCClient
) -> None:
    """The revocation endpoint accepts connections and never answers: the logout ends after
    http_timeout with the tokens forgotten and a log line."""
    authenticator = app.authenticator
    user = await _logged_in(app, provider, client)
    endpoints = await authenticator.endpoints()
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        authenticator._endpoints = dataclasses.replace(
            endpoints, revocation_endpoint=f"http://127.0.0.1:{port}/revoke"
        )
        authenticator.http_timeout = 1.0
        started = time.monotonic()
        with _captured(authenticator.log) as lines:
            await authenticator.sign_out(user)
        assert time.monotonic() - started < 5
    assert secret_values(await user.get_auth_state()) == []
    assert any(x.startswith("revocation of the refresh token of alice failed") for x in lines)
    # a provider that refuses connections: the same, at once
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    authenticator._endpoints = dataclasses.replace(
        endpoints, revocation_endpoint=f"http://127.0.0.1:{port}/revoke"
    )
    user = await _logged_in(app, provider, client)
    with _captured(authenticator.log) as lines:
        await authenticator.sign_out(user)
    assert any(x.startswith("revocation of the refresh token of alice failed") for x in lines)
