"""Token lifecycle against the real provider with 5-second access tokens: renewal with rotation,
the token Secret following it, a revoked refresh token forcing a new login, logout stopping the
renewals of a running server, nothing secret in the hub's logs, pages or pods, and a provider
outage.

Tokens renew every few seconds here, so no test compares two reads taken at different moments
as if nothing happened in between: each waits for the state it means (and the waits are long,
as they end as soon as the condition holds, so a loaded machine only makes them slower).
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import pytest
import requests
from iam_platform import (
    CLIENT_ID,
    NAMESPACE,
    Hub,
    free_ports,
    provider_settings,
    secret_in_step,
    sign_in,
    spawn,
    start_hub,
    stop,
    wait_for,
)

from aiinfn_hub.dev.oidc import LocalOIDCProvider

pytestmark = pytest.mark.slow

ACCESS_TOKEN_TTL = 5
WAIT = 60  # seconds: an upper bound for conditions that take a few seconds on an idle machine


@pytest.fixture
def hub(fast_tokens_hub: Hub) -> Hub:
    """Access tokens live 5 s; the hub renews them 2 s before expiry, polls servers every 1 s
    (the session's ``fast_tokens_hub``)."""
    return fast_tokens_hub


def _renewal_notes(hub: Hub, user: str) -> int:
    return len(
        re.findall(rf"Tokens of {user} cannot be renewed until they sign in again", hub.log())
    )


def _next_poll(hub: Hub, user: str) -> None:
    """Wait for the next spawner poll that finds the user's tokens not renewable."""
    notes = _renewal_notes(hub, user)
    wait_for(lambda: _renewal_notes(hub, user) > notes, WAIT, "a spawner poll")


def test_tokens_rotate_and_the_secret_follows_while_the_server_runs(hub: Hub) -> None:
    session, page = sign_in(hub, "alice", "alice-pw")
    assert page.status_code == 200
    spawn(hub, "alice")
    try:
        # with 5-second tokens a renewal may come between the spawn and any read
        first = wait_for(
            lambda: secret_in_step(hub, "alice"), WAIT, "the Secret to hold the storage token"
        )

        def rotated() -> bool:
            state = hub.auth_state("alice")
            return (
                state["access_token"] != first["access_token"]
                and state["refresh_token"] != first["refresh_token"]
                and hub.token_secret("alice")
                == state["storage_token"]["access_token"]
                != first["storage_token"]["access_token"]
            )

        # renewed by the spawner poll, with no request from the user
        wait_for(rotated, WAIT, "the tokens and the Secret to be renewed")

        # the renewed login token is valid at the provider (read afresh at each try: the
        # token read may be about to be replaced, and the hub may be late renewing it)
        def accepted() -> bool:
            token = hub.auth_state("alice")["access_token"]
            me = requests.get(
                f"{hub.provider.issuer}/me",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            return me.status_code == 200 and me.json()["preferred_username"] == "alice"

        wait_for(accepted, WAIT, "a renewed access token accepted by the provider")

        # the provider revokes the refresh token: the next renewal fails, login is required
        refresh_token = hub.auth_state("alice")["refresh_token"]
        revoked = requests.post(
            hub.provider.discovery()["revocation_endpoint"],
            data={"token": refresh_token, "token_type_hint": "refresh_token"},
            auth=(CLIENT_ID, _client_secret(hub)),
            timeout=10,
        )
        assert revoked.status_code == 200

        def sent_to_login() -> bool:
            home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=10)
            return home.status_code == 302 and "/hub/login" in home.headers["location"]

        wait_for(sent_to_login, WAIT, "the hub to ask alice to sign in again")
        # signing in again works and gives fresh tokens. The browser then lands on the
        # running server, whose own OAuth round trip with the hub is not what this test is
        # about: check the hub's answer to the sign-in and the hub session instead.
        _, page = sign_in(hub, "alice", "alice-pw", session)
        callbacks = [r for r in [*page.history, page] if "/hub/oauth_callback" in r.url]
        assert [r.status_code for r in callbacks] == [302], page.text[:1000]
        assert session.get(f"{hub.url}/hub/home", timeout=30).status_code == 200
        assert hub.auth_state("alice")["refresh_token"] != refresh_token
    finally:
        stop(hub, "alice")
    wait_for(lambda: hub.token_secret("alice") is None, WAIT, "the token Secret to go")


def test_after_logout_a_running_server_keeps_its_token_but_gets_no_renewal(hub: Hub) -> None:
    """Logout revokes the refresh token and forgets the tokens; the server left running keeps
    the token already in its Secret, which the spawner poll no longer renews."""
    session, page = sign_in(hub, "frank", "frank-pw")
    assert page.status_code == 200
    spawn(hub, "frank")
    try:
        state = wait_for(
            lambda: secret_in_step(hub, "frank"), WAIT, "the Secret to hold the storage token"
        )
        logout_time = time.time()
        logged_out = session.get(f"{hub.url}/hub/logout", allow_redirects=False, timeout=30)
        assert logged_out.status_code == 302
        after = hub.auth_state("frank")
        assert not {"access_token", "refresh_token", "storage_token"} & set(after)
        # the refresh token read before logout (or its successor, of the same grant, if a
        # renewal came in between) was revoked: the provider refuses it
        refused = requests.post(
            hub.provider.discovery()["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": state["refresh_token"]},
            auth=(CLIENT_ID, _client_secret(hub)),
            timeout=10,
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        # wait until every token issued before the logout has expired (so renewals would be
        # due at every poll), and for a poll after that (a write under way at logout has
        # landed by then); then the Secret must not change over the next poll
        due = logout_time + ACCESS_TOKEN_TTL
        wait_for(lambda: time.time() > due, WAIT, "the tokens issued before logout to expire")
        _next_poll(hub, "frank")
        secret = hub.token_secret("frank")
        assert secret, "the running server's token Secret is gone"
        _next_poll(hub, "frank")
        assert hub.token_secret("frank") == secret  # not renewed, not removed
        assert not {"access_token", "refresh_token"} & set(hub.auth_state("frank"))
        assert hub.admin_get("/users/frank")["servers"][""]["ready"]
        assert "Revoked the refresh token of frank at the provider" in hub.log()
    finally:
        stop(hub, "frank")
    wait_for(lambda: hub.token_secret("frank") is None, WAIT, "the token Secret to go")


def test_no_token_code_or_secret_in_logs_pages_or_pods(hub: Hub) -> None:
    """A full login / spawn / renewal / stop cycle, then every secret seen is searched for."""
    session, page = sign_in(hub, "bob", "bob-pw")
    pages = [page.text]
    spawn(hub, "bob")
    first = hub.auth_state("bob")
    wait_for(
        lambda: hub.auth_state("bob")["access_token"] != first["access_token"],
        WAIT,
        "a renewal",
    )
    hub.token_secret("bob")
    pods = hub.emulator.objects("Pod", NAMESPACE)
    for path in ("/hub/home", "/hub/spawn", "/hub/token"):
        pages.append(session.get(f"{hub.url}{path}", timeout=30).text)
    stop(hub, "bob")
    assert hub.seen_codes, "the sign-in's authorization code was not seen"
    secrets_seen = hub.seen_tokens | set(hub.seen_codes) | {_client_secret(hub)}
    assert len(hub.seen_tokens) >= 6  # access, refresh, id and storage tokens, renewed
    log = hub.log()
    assert "Renewed the tokens of bob" in log
    for value in secrets_seen:
        assert value not in log, "a secret value is in the hub's log"
        assert all(value not in text for text in pages), "a secret value is in a hub page"
        assert value not in str(pods), "a secret value is in a pod manifest"


def test_provider_outage_gives_a_clear_page_and_the_hub_keeps_serving(
    hub: Hub, tmp_path: Path
) -> None:
    """A second hub starts while its provider is down: it serves, login says why it cannot
    work, and once the provider is back the endpoints are discovered and login works."""
    (proxy_port,), client_secret = free_ports(1), secrets.token_urlsafe(24)
    provider = LocalOIDCProvider(provider_settings(proxy_port, client_secret), tmp_path / "oidc")
    second = start_hub(
        tmp_path / "hub",
        hub.emulator,
        provider,
        proxy_port=proxy_port,
        client_secret=client_secret,
    )
    try:
        page = requests.get(f"{second.url}/hub/oauth_login", timeout=30)
        assert page.status_code == 503
        assert "cannot be reached right now" in page.text and provider.issuer in page.text
        assert second.admin("GET", "/users").status_code == 200
        assert "OpenID discovery at" in second.log()
        provider.start()
        _, page = sign_in(second, "bob", "bob-pw")
        assert page.status_code == 200 and second.admin_get("/users/bob")["name"] == "bob"
    finally:
        second.process.stop()
        provider.stop()


def _client_secret(hub: Hub) -> str:
    return (hub.process.log_path.parent / "client_secret").read_text().strip()
