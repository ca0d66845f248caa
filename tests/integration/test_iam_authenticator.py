"""IAMAuthenticator inside a JupyterHub app (MockHub), against the real local provider: token
renewal with rotation under concurrency, token exchange, configuration errors."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from iam_platform import CLIENT_ID, STORAGE_AUDIENCE, provider_code_flow, provider_settings
from jupyterhub import orm
from jupyterhub.crypto import CryptKeeper

from aiinfn_hub.auth import IAMAuthenticator
from aiinfn_hub.dev.oidc import LocalOIDCProvider, OIDCClient
from aiinfn_hub.dev.processes import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOIDCProvider]:
    settings = provider_settings(free_port(), secrets.token_urlsafe(16), access_token_ttl=60)
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
    hub = await hub_app(
        config={
            "JupyterHub": {"authenticator_class": IAMAuthenticator},
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


async def _logged_in(app: Any, provider: LocalOIDCProvider, client: OIDCClient) -> Any:
    """alice with real tokens from the provider in her encrypted auth_state."""
    token_info = await asyncio.to_thread(provider_code_flow, provider, client, "alice", "alice-pw")
    model = await app.authenticator._token_to_auth_model(token_info)
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
