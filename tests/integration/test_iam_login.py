"""IAM login against the real local OpenID provider and a real hub on 127.0.0.1.

The client signs in browser-less: it follows the redirects and submits the provider's login and
consent forms, as a browser would.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from iam_platform import (
    CLIENT_ID,
    EXAMPLES,
    NAMESPACE,
    STORAGE_AUDIENCE,
    Hub,
    free_ports,
    provider_settings,
    running_platform,
    sign_in,
    start_hub,
    wait_for,
)

from aiinfn_hub.dev.emulator.cluster import load_cluster_file
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.oidc import LocalOIDCProvider

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_platform(
        tmp_path_factory.mktemp("iam"),
        extra_config=lambda _emulator, _platform: (
            'c.IAMAuthenticator.rebind_users = {"carol"}\n'
            'c.IAMAuthenticator.platform_name = "Test <GPU> platform"\n'
            'c.IAMAuthenticator.platform_description = "Notebooks on GPUs for physicists."\n'
            'c.IAMAuthenticator.platform_logo_url = "/hub/logo"\n'
            'c.IAMAuthenticator.support_contact = "ai-support@example.org"\n'
        ),
    ) as running:
        yield running


def test_login_lands_on_the_hub_as_the_user_in_the_iam_groups(hub: Hub) -> None:
    session, page = sign_in(hub, "alice", "alice-pw")
    assert page.status_code == 200, page.text[:2000]
    assert page.url.startswith(f"{hub.url}/hub/")
    assert "alice" in page.text
    model = hub.admin_get("/users/alice")
    # /cms/analysis becomes cms:analysis and implies cms
    assert sorted(model["groups"]) == ["cms", "cms:analysis"]
    assert model["admin"] is False
    # the session cookie works for the user's own API
    me = session.get(f"{hub.api}/user", timeout=30)
    assert me.status_code == 403 or me.json()["name"] == "alice"


def test_admin_group_members_are_hub_admins(hub: Hub) -> None:
    _, page = sign_in(hub, "root-admin", "admin-pw")
    assert page.status_code == 200
    model = hub.admin_get("/users/root-admin")
    assert model["admin"] is True and model["groups"] == ["platform-admins"]


def test_subgroups_grant_only_themselves(hub: Hub) -> None:
    """/platform-admins/ops is not the admin group; /cms/x alone is not the cms project."""
    _, page = sign_in(hub, "sub-admin", "sub-admin-pw")
    assert page.status_code == 200  # as a member of qml
    model = hub.admin_get("/users/sub-admin")
    assert model["admin"] is False
    assert sorted(model["groups"]) == ["platform-admins:ops", "qml"]
    _, page = sign_in(hub, "cms-sub", "cms-sub-pw")
    assert page.status_code == 403
    assert "not in a research project enabled on this hub" in page.text
    assert hub.admin("GET", "/users/cms-sub").status_code == 404


def test_a_username_stays_with_the_iam_identity_that_first_used_it(hub: Hub) -> None:
    """Another IAM account whose preferred_username is alice is refused, with a page for the
    user and a log line for admins; alice herself still signs in."""
    sign_in(hub, "alice", "alice-pw")
    _, page = sign_in(hub, "alice-again", "again-pw")
    assert page.status_code == 403, page.text[:1000]
    assert "belongs to another IAM identity" in page.text
    assert "Contact the platform administrators" in page.text
    assert (
        "Refusing a login as alice: the hub user is bound to IAM subject 'alice' "
        f"(issuer {hub.provider.issuer}), this login is subject 'alice-again'"
    ) in hub.log()
    assert hub.admin_get("/users/alice")["auth_state"]["oauth_user"]["sub"] == "alice"
    _, page = sign_in(hub, "alice", "alice-pw")
    assert page.status_code == 200


def test_admins_rebind_a_recreated_account_with_rebind_users(hub: Hub) -> None:
    _, page = sign_in(hub, "carol", "carol-pw")
    assert page.status_code == 200
    _, page = sign_in(hub, "carol-new", "carol-new-pw")
    assert page.status_code == 200, page.text[:1000]
    assert hub.auth_state("carol")["oauth_user"]["sub"] == "carol-new"
    assert "Re-binding carol from IAM subject 'carol'" in hub.log()


def test_projects_are_groups_with_their_settings_as_properties(hub: Hub) -> None:
    sign_in(hub, "bob", "bob-pw")
    group = hub.admin_get("/groups/lhcb-flashsim")
    assert group["users"] == ["bob"]
    # flat strings, as the admin panel shows each property in one text field
    assert group["properties"]["displayName"] == "LHCb Flash Simulation"
    assert group["properties"]["limits.maxGpus"] == "1"
    assert all(isinstance(v, str) for v in group["properties"].values())
    # every configured project exists as a group, even before anyone of it logged in
    names = {g["name"] for g in hub.admin_get("/groups")}
    assert {"ml-infn", "cms", "lhcb-flashsim", "qml", "fpga-lab"} <= names
    assert hub.admin_get("/groups/fpga-lab")["properties"]["storage.sharedFolder"] == "false"


def test_auth_state_holds_tokens_and_a_narrower_storage_token(hub: Hub) -> None:
    sign_in(hub, "alice", "alice-pw")
    state = hub.auth_state("alice")
    assert state["access_token"] and state["refresh_token"] and state["id_token"]
    assert state["oauth_user"]["preferred_username"] == "alice"
    storage = state["storage_token"]
    assert storage["audience"] == STORAGE_AUDIENCE
    assert storage["scope"] == "storage.read:/ storage.modify:/"
    # the exchanged token is a JWT signed by the provider, for the storage audience only
    jwks = jwt.PyJWKClient(hub.provider.discovery()["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(storage["access_token"])
    claims = jwt.decode(
        storage["access_token"], key, algorithms=["RS256"], audience=STORAGE_AUDIENCE
    )
    assert claims["sub"] == "alice" and claims["iss"] == hub.provider.issuer
    assert claims["scope"] == "storage.read:/ storage.modify:/"
    assert storage["access_token"] != state["access_token"]


def test_user_outside_allowed_groups_gets_a_clear_403(hub: Hub) -> None:
    session, page = sign_in(hub, "dave", "dave-pw")
    assert page.status_code == 403
    assert page.url == f"{hub.url}/hub/not-in-a-project"
    assert page.text.count("not in a research project enabled on this hub") == 1
    assert "You signed in as <strong" in page.text and ">dave</strong>" in page.text
    assert "LHCb Flash Simulation" in page.text  # the platform's projects
    assert 'href="mailto:ai-support@example.org"' in page.text
    # the sign-out link ends the provider session, then comes back to the login page
    assert f'href="{hub.provider.issuer}/session/end?client_id=aiinfn-hub' in page.text
    assert hub.admin("GET", "/users/dave").status_code == 404
    # the page can be reloaded: no spent OAuth state in its URL
    again = session.get(page.url, timeout=30)
    assert again.status_code == 403 and "OAuth state" not in again.text
    assert "not in a research project enabled on this hub" in again.text
    # another browser, that was not refused, has nothing to read there
    other = requests.get(page.url, allow_redirects=False, timeout=30)
    assert other.status_code == 302 and "/hub/login" in other.headers["location"]
    # the refused login's refresh token is not left valid at the provider
    assert "Revoked the refresh token of dave at the provider" in hub.log()


def test_the_login_page_shows_the_configured_name_logo_and_purpose(hub: Hub) -> None:
    page = requests.get(f"{hub.url}/hub/login", timeout=30)
    assert page.status_code == 200
    assert "Test &lt;GPU&gt; platform</h1>" in page.text  # escaped
    assert "Notebooks on GPUs for physicists." in page.text
    assert 'src="/hub/logo"' in page.text and 'alt="Test &lt;GPU&gt; platform"' in page.text
    assert "Sign in with INDIGO IAM" in page.text  # the stock page underneath


@pytest.mark.parametrize(
    ("user", "status", "message"),
    [
        ("eve", 403, "did not provide a username"),
        ("odd", 403, "cannot be used on this hub"),
        ("mallory", 502, "malformed groups claim"),
    ],
)
def test_missing_or_malformed_claims_give_clear_error_pages(
    hub: Hub, user: str, status: int, message: str
) -> None:
    _, page = sign_in(hub, user, f"{user}-pw")
    assert page.status_code == status, page.text[:1000]
    assert page.text.count(message) == 1  # said once, under a short heading
    # nobody was created, and the hub keeps serving others
    assert all(u["name"] != user for u in hub.admin_get("/users"))
    _, ok = sign_in(hub, "bob", "bob-pw")
    assert ok.status_code == 200


def test_logout_ends_the_hub_session_and_goes_to_the_provider(hub: Hub) -> None:
    session, _ = sign_in(hub, "bob", "bob-pw")
    refresh_token = hub.auth_state("bob")["refresh_token"]
    response = session.get(f"{hub.url}/hub/logout", allow_redirects=False, timeout=30)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{hub.provider.issuer}/session/end?")
    assert "client_id=aiinfn-hub" in location
    assert "post_logout_redirect_uri=" in location
    # the hub session is over
    home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302 and "/hub/login" in home.headers["location"]
    # the tokens are forgotten, and the provider refuses the refresh token
    assert hub.auth_state("bob").get("refresh_token") is None
    refused = requests.post(
        hub.provider.discovery()["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(CLIENT_ID, hub.client_secret),
        timeout=30,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert "Revoked the refresh token of bob at the provider" in hub.log()


def test_logout_with_a_gpu_server_asks_first_and_can_keep_the_server(hub: Hub) -> None:
    session, _ = sign_in(hub, "bob", "bob-pw")
    options = {"accelerator": "a100-1g-10gb", "count": "1", "image": "cuda-ml"}
    response = hub.admin("POST", "/users/bob/server", json=options)
    assert response.status_code in (201, 202), response.text
    try:
        wait_for(
            lambda: hub.admin_get("/users/bob")["servers"].get("", {}).get("ready"),
            60,
            "bob's server",
        )
        page = session.get(f"{hub.url}/hub/logout", allow_redirects=False, timeout=30)
        assert page.status_code == 200, page.text[:1000]
        assert "still holds an accelerator" in page.text and "1g.10gb" in page.text
        assert hub.auth_state("bob").get("refresh_token")  # asking is not logging out yet
        (xsrf,) = re.findall(r'name="_xsrf" value="([^"]+)"', page.text)
        answer = session.post(
            f"{hub.url}/hub/logout", data={"_xsrf": xsrf, "stop": "no"}, allow_redirects=False
        )
        assert answer.status_code == 302, answer.text[:1000]
        assert answer.headers["location"].startswith(f"{hub.provider.issuer}/session/end?")
        home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=30)
        assert home.status_code == 302 and "/hub/login" in home.headers["location"]
        assert hub.admin_get("/users/bob")["servers"][""]["ready"]  # kept, as asked
    finally:
        hub.admin("DELETE", "/users/bob/server")
        wait_for(lambda: not hub.admin_get("/users/bob")["servers"], 60, "bob's server to stop")


def test_spawn_writes_the_storage_token_secret_and_stop_deletes_it(hub: Hub) -> None:
    sign_in(hub, "alice", "alice-pw")
    response = hub.admin("POST", "/users/alice/server", json={})
    assert response.status_code in (201, 202), response.text
    try:
        wait_for(
            lambda: hub.admin_get("/users/alice")["servers"].get("", {}).get("ready"),
            60,
            "alice's server",
        )
        (secret,) = [s for s in hub.secrets_in() if s["metadata"]["name"] == "aiinfn-token-alice"]
        token = base64.b64decode(secret["data"]["token"]).decode()
        assert token == hub.auth_state("alice")["storage_token"]["access_token"]
        assert secret["metadata"]["labels"]["app.kubernetes.io/component"] == "storage-token"
        assert "ownerReferences" not in secret["metadata"]
        # no token in the pod's environment
        (pod,) = hub.emulator.objects("Pod", NAMESPACE)
        env = pod["spec"]["containers"][0].get("env", [])
        assert all(token not in str(item) for item in env)
    finally:
        hub.admin("DELETE", "/users/alice/server")
    wait_for(lambda: not hub.emulator.objects("Pod", NAMESPACE), 60, "the pod to go")
    wait_for(
        lambda: not [s for s in hub.secrets_in() if s["metadata"]["name"] == "aiinfn-token-alice"],
        30,
        "the token Secret to go",
    )


def test_hub_refuses_to_start_without_a_crypt_key(tmp_path: Path) -> None:
    emulator = Emulator(
        load_cluster_file(EXAMPLES / "cluster.yaml"), state_dir=tmp_path / "emulator"
    ).start()
    (proxy_port,), client_secret = free_ports(1), secrets.token_urlsafe(24)
    provider = LocalOIDCProvider(provider_settings(proxy_port, client_secret), tmp_path / "oidc")
    try:
        hub = start_hub(
            tmp_path / "hub",
            emulator,
            provider,
            proxy_port=proxy_port,
            client_secret=client_secret,
            crypt_key=False,
            wait=False,
        )
        assert hub.process.process is not None
        code = hub.process.process.wait(60)
        assert code != 0
        log = hub.log()
        assert "JUPYTERHUB_CRYPT_KEY is not set" in log
        assert "openssl rand -hex 32" in log
    finally:
        emulator.stop()
