"""A real hub (JupyterHub + configurable-http-proxy, IAMAuthenticator, AIInfnSpawner) next to the
real local OpenID provider and the emulated cluster, and a browser-less client that signs in
through the provider's own login and consent pages."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from aiinfn_hub.auth.tokens import secret_values
from aiinfn_hub.dev.emulator.cluster import NodeSpec, load_cluster_file
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.node_tools import node_bin
from aiinfn_hub.dev.oidc import DemoUser, LocalOIDCProvider, OIDCClient, ProviderSettings
from aiinfn_hub.dev.processes import ManagedProcess, answers, free_ports

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMESPACE = "jupyterhub"
CLIENT_ID = "aiinfn-hub"
STORAGE_AUDIENCE = "object-store"

DEMO_USERS = [
    DemoUser("alice", "alice-pw", ("/cms", "/cms/analysis"), name="Alice Physicist"),
    DemoUser("bob", "bob-pw", ("/lhcb-flashsim",)),
    DemoUser("root-admin", "admin-pw", ("/platform-admins",)),
    DemoUser("dave", "dave-pw", ("/not-a-project",)),
    # malformed or missing claims, served as the provider's userinfo
    DemoUser("eve", "eve-pw", claims={"email": "eve@example.org", "wlcg.groups": ["/cms"]}),
    DemoUser(
        "mallory", "mallory-pw", claims={"preferred_username": "mallory", "wlcg.groups": "/cms"}
    ),
    DemoUser("odd", "odd-pw", claims={"preferred_username": "../etc", "wlcg.groups": ["/cms"]}),
    # another IAM account (its sub is its login name) giving an existing username
    DemoUser(
        "alice-again", "again-pw", claims={"preferred_username": "alice", "wlcg.groups": ["/cms"]}
    ),
    # an account recreated with admins' consent (the hub lists carol in rebind_users)
    DemoUser("carol", "carol-pw", ("/cms",)),
    DemoUser(
        "carol-new", "carol-new-pw", claims={"preferred_username": "carol", "wlcg.groups": ["/cms"]}
    ),
    # only subgroups of the admin group and of a project
    DemoUser("sub-admin", "sub-admin-pw", ("/platform-admins/ops", "/qml")),
    DemoUser("cms-sub", "cms-sub-pw", ("/cms/x",)),
    DemoUser("frank", "frank-pw", ("/cms",)),
]

HUB_CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.log_level = "DEBUG"
c.Application.log_level = "DEBUG"

from aiinfn_hub.hub_setup import configure_hub
configure_hub(c, {platform!r})

c.IAMAuthenticator.issuer = {issuer!r}
c.IAMAuthenticator.client_id = {client_id!r}
c.IAMAuthenticator.client_secret_file = {secret_file!r}
c.IAMAuthenticator.oauth_callback_url = "http://127.0.0.1:{proxy_port}/hub/oauth_callback"
c.IAMAuthenticator.allowed_groups = {{"cms", "lhcb-flashsim", "ml-infn", "qml", "fpga-lab"}}
c.IAMAuthenticator.admin_groups = {{"platform-admins"}}
c.IAMAuthenticator.storage_token_audience = {audience!r}
c.IAMAuthenticator.storage_token_scopes = ["storage.read:/", "storage.modify:/"]
c.IAMAuthenticator.post_logout_redirect_url = "http://127.0.0.1:{proxy_port}/hub/login"
c.IAMAuthenticator.token_refresh_margin = {margin}
c.IAMAuthenticator.auth_refresh_age = {refresh_age}

c.JupyterHub.services = [{{"name": "test-admin", "api_token": {api_token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "test-admin", "services": ["test-admin"],
      "scopes": ["admin:users", "admin:auth_state", "admin:servers", "admin:server_state",
                 "admin:groups", "tokens",
                 "access:servers"]}},
]
c.AIInfnSpawner.namespace = {namespace!r}
c.AIInfnSpawner.cmd = ["jupyterhub-singleuser"]
c.AIInfnSpawner.environment = {{
    "POD_IP": {{"valueFrom": {{"fieldRef": {{"fieldPath": "status.podIP"}}}}}}
}}
c.AIInfnSpawner.args = ["--ServerApp.ip=$(POD_IP)", "--allow-root"]
c.AIInfnSpawner.start_timeout = 60
c.AIInfnSpawner.http_timeout = 60
c.AIInfnSpawner.poll_interval = {poll_interval}
"""


def provider_settings(
    proxy_port: int, client_secret: str, access_token_ttl: int = 3600
) -> ProviderSettings:
    """Demo users, and the hub (at ``proxy_port``, not started yet) as a confidential client;
    the provider's own port is chosen here, distinct from ``proxy_port``."""
    base = f"http://127.0.0.1:{proxy_port}"
    client = OIDCClient(
        CLIENT_ID, client_secret, (f"{base}/hub/oauth_callback",), (f"{base}/hub/login",)
    )
    (port,) = free_ports(1, exclude=[proxy_port])
    return ProviderSettings(
        users=list(DEMO_USERS),
        clients=[client],
        port=port,
        access_token_ttl=access_token_ttl,
        exchange_audiences={STORAGE_AUDIENCE: "storage.read:/ storage.modify:/"},
    )


@dataclass
class Hub:
    """A running hub process and what the tests need to talk to it."""

    process: ManagedProcess
    url: str
    api_token: str
    client_secret: str
    emulator: Emulator
    provider: LocalOIDCProvider
    seen_codes: list[str] = field(default_factory=list)
    seen_tokens: set[str] = field(default_factory=set)
    # configurable-http-proxy in a process of its own, as z2jh runs it (None: the hub's child)
    proxy: ManagedProcess | None = None

    @property
    def api(self) -> str:
        return f"{self.url}/hub/api"

    def admin_get(self, path: str) -> Any:
        response = requests.get(
            f"{self.api}{path}", headers={"Authorization": f"token {self.api_token}"}, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.api}{path}",
            headers={"Authorization": f"token {self.api_token}"},
            timeout=30,
            **kwargs,
        )

    def auth_state(self, user: str) -> dict[str, Any]:
        """The user's auth_state; every token in it is remembered in ``seen_tokens``."""
        state: dict[str, Any] = self.admin_get(f"/users/{user}")["auth_state"]
        self.seen_tokens.update(secret_values(state))
        return state

    def token_secret(self, user: str) -> str | None:
        """The token in the user's token Secret (remembered in ``seen_tokens``), or None."""
        for secret in self.secrets_in():
            if secret["metadata"]["name"] == f"aiinfn-token-{user}":
                token = base64.b64decode(secret["data"]["token"]).decode()
                self.seen_tokens.add(token)
                return token
        return None

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def secrets_in(self, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        return self.emulator.objects("Secret", namespace)


def start_hub(
    state: Path,
    emulator: Emulator,
    provider: LocalOIDCProvider,
    *,
    proxy_port: int,
    client_secret: str,
    margin: int = 120,
    refresh_age: int = 60,
    poll_interval: int = 30,
    crypt_key: bool = True,
    wait: bool = True,
    platform: Path | None = None,
    extra_config: str = "",
    external_proxy: bool = False,
) -> Hub:
    """Write the config and start ``jupyterhub``; returns once the API answers (if ``wait``).

    ``external_proxy``: the proxy runs on its own and outlives the hub, as on a cluster
    (z2jh's proxy pod), so a hub restart keeps the routes.
    """
    state.mkdir(parents=True, exist_ok=True)
    secret_file = state / "client_secret"
    secret_file.write_text(client_secret + "\n")
    api_token = secrets.token_hex(16)
    hub_port, proxy_api_port = free_ports(2, exclude=[proxy_port, provider.settings.port])
    config = state / "jupyterhub_config.py"
    config.write_text(
        HUB_CONFIG.format(
            proxy_port=proxy_port,
            hub_port=hub_port,
            proxy_api_port=proxy_api_port,
            chp=str(node_bin("configurable-http-proxy")),
            state=state,
            platform=str(platform or platform_without_storage(state)),
            issuer=provider.issuer,
            client_id=CLIENT_ID,
            secret_file=str(secret_file),
            audience=STORAGE_AUDIENCE,
            margin=margin,
            refresh_age=refresh_age,
            api_token=api_token,
            namespace=NAMESPACE,
            poll_interval=poll_interval,
        )
        + extra_config
        + ("\nc.ConfigurableHTTPProxy.should_start = False\n" if external_proxy else "")
    )
    env = dict(os.environ)
    env["KUBECONFIG"] = str(emulator.write_kubeconfig())
    env["CONFIGPROXY_AUTH_TOKEN"] = secrets.token_hex(16)
    proxy = None
    if external_proxy:
        proxy = ManagedProcess(
            "configurable-http-proxy",
            [
                str(node_bin("configurable-http-proxy")),
                *("--ip", "127.0.0.1", "--port", str(proxy_port)),
                *("--api-ip", "127.0.0.1", "--api-port", str(proxy_api_port)),
                *("--default-target", f"http://127.0.0.1:{hub_port}"),
                *("--error-target", f"http://127.0.0.1:{hub_port}/hub/error"),
            ],
            state / "proxy.log",
            env={"PATH": env["PATH"], "CONFIGPROXY_AUTH_TOKEN": env["CONFIGPROXY_AUTH_TOKEN"]},
        ).start()
        proxy.wait_until(lambda: listening(proxy_api_port), 30, "listening")
    env.pop("JUPYTERHUB_CRYPT_KEY", None)
    if crypt_key:
        env["JUPYTERHUB_CRYPT_KEY"] = secrets.token_hex(32)
    process = ManagedProcess(
        "jupyterhub",
        [sys.executable, "-m", "jupyterhub", "-f", str(config)],
        state / "hub.log",
        env=env,
        cwd=state,
    ).start()
    hub = Hub(
        process=process,
        url=f"http://127.0.0.1:{proxy_port}",
        api_token=api_token,
        client_secret=client_secret,
        emulator=emulator,
        provider=provider,
        proxy=proxy,
    )
    if wait:
        process.wait_until(lambda: answers(f"{hub.api}/"), 60, "serving its API")
    return hub


def listening(port: int) -> bool:
    """Whether something accepts connections on ``127.0.0.1:port`` now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def start_hub_again(hub: Hub, timeout: float = 90) -> None:
    """Start a stopped hub again with the same configuration, database, crypt key and proxy
    token, as Kubernetes restarts the hub's pod; returns once its API answers."""
    hub.process.start()
    hub.process.wait_until(lambda: answers(f"{hub.api}/"), timeout, "serving its API again")


def spawn(hub: Hub, user: str) -> None:
    """Start ``user``'s default server through the API and wait until it is ready."""
    response = hub.admin("POST", f"/users/{user}/server", json={})
    assert response.status_code in (201, 202), response.text
    wait_for(
        lambda: hub.admin_get(f"/users/{user}")["servers"].get("", {}).get("ready"),
        60,
        f"{user}'s server",
    )


def stop(hub: Hub, user: str) -> None:
    """Stop ``user``'s server through the API and wait until its pod is gone."""
    hub.admin("DELETE", f"/users/{user}/server")
    pod = f"jupyter-{user}"
    wait_for(
        lambda: all(p["metadata"]["name"] != pod for p in hub.emulator.objects("Pod", NAMESPACE)),
        60,
        f"{user}'s pod to go",
    )


def secret_in_step(hub: Hub, user: str) -> dict[str, Any] | None:
    """The user's auth_state if the Secret holds its storage token at this moment, else None
    (a renewal may land between the two reads: the caller waits for a consistent pair)."""
    state = hub.auth_state(user)
    storage = state.get("storage_token") or {}
    if storage.get("access_token") and hub.token_secret(user) == storage["access_token"]:
        return state
    return None


def platform_without_storage(folder: Path) -> Path:
    """examples/platform.yaml less its storage section: these hubs run pods as local processes
    and test login and tokens, not mounts."""
    return platform_with_storage(folder, None)


def platform_with_storage(folder: Path, storage: dict[str, Any] | None) -> Path:
    """examples/platform.yaml with ``storage`` in place of its own (``None``: no storage)."""
    data = yaml.safe_load((EXAMPLES / "platform.yaml").read_text())
    data.pop("storage", None)
    if storage is not None:
        data["storage"] = storage
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "platform.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def provider_sign_in(
    hub_url: str, username: str, password: str, session: requests.Session | None = None
) -> tuple[requests.Session, requests.Response]:
    """Start the hub's login, fill in the provider's login and consent forms as a browser
    would, and return the session and the hub's final answer (its page, or its error page)."""
    session = session or requests.Session()
    response = session.get(f"{hub_url}/hub/oauth_login", timeout=30)
    for _ in range(4):
        if "/interaction/" not in response.url:
            break
        actions = _FORM_ACTION.findall(response.text)
        if 'name="password"' in response.text:
            login = next(a for a in actions if a.endswith("/login"))
            response = session.post(
                urllib.parse.urljoin(response.url, login),
                data={"username": username, "password": password},
                timeout=30,
            )
        else:
            confirm = next(a for a in actions if a.endswith("/confirm"))
            response = session.post(urllib.parse.urljoin(response.url, confirm), timeout=30)
    return session, response


def sign_in(
    hub: Hub, username: str, password: str, session: requests.Session | None = None
) -> tuple[requests.Session, requests.Response]:
    """``provider_sign_in`` at ``hub``, remembering every authorization code seen on the way
    (the log-capture test searches the logs for them)."""
    session, response = provider_sign_in(hub.url, username, password, session)
    for step in [*response.history, response]:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(step.url).query)
        hub.seen_codes.extend(query.get("code", []))
        location = step.headers.get("location", "")
        hub.seen_codes.extend(
            urllib.parse.parse_qs(urllib.parse.urlparse(location).query).get("code", [])
        )
    return session, response


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def dump(hub: Hub) -> None:
    """Print the hub's and the provider's logs (on failure)."""
    sys.stderr.write("--- hub log:\n" + hub.log()[-8000:] + "\n")
    sys.stderr.write(
        "--- provider log:\n" + hub.provider.log_path.read_text(errors="replace")[-3000:] + "\n"
    )


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def provider_code_flow(
    provider: LocalOIDCProvider,
    client: OIDCClient,
    username: str,
    password: str,
    scope: str = "openid profile email offline_access wlcg.groups",
) -> dict[str, Any]:
    """Sign in at the provider as ``client`` would (code flow with PKCE, login and consent
    forms) and return the token endpoint's response, without any hub."""
    import hashlib

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    endpoints = provider.discovery()
    session = requests.Session()
    response = session.get(
        endpoints["authorization_endpoint"],
        params={
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uris[0],
            "scope": scope,
            "state": secrets.token_hex(8),
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
        },
        timeout=30,
    )
    for _ in range(6):
        if "/interaction/" not in response.url:
            break
        actions = _FORM_ACTION.findall(response.text)
        if 'name="password"' in response.text:
            action = next(a for a in actions if a.endswith("/login"))
            data = {"username": username, "password": password}
        else:
            action = next(a for a in actions if a.endswith("/confirm"))
            data = {}
        response = session.post(
            urllib.parse.urljoin(response.url, action),
            data=data,
            allow_redirects=False,
            timeout=30,
        )
        while response.is_redirect and not response.headers["location"].startswith(
            client.redirect_uris[0]
        ):
            response = session.get(
                urllib.parse.urljoin(response.url, response.headers["location"]),
                allow_redirects=False,
                timeout=30,
            )
        if response.is_redirect:
            break
    location = response.headers["location"]
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    tokens = requests.post(
        endpoints["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uris[0],
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.client_secret),
        timeout=30,
    )
    tokens.raise_for_status()
    result: dict[str, Any] = tokens.json()
    return result


@contextlib.contextmanager
def running_platform(
    state: Path,
    *,
    access_token_ttl: int = 3600,
    platform: Callable[[Path], Path] | None = None,
    extra_config: Callable[[Emulator, Path], str] | None = None,
    extra_nodes: Sequence[NodeSpec] = (),
    **hub_options: Any,
) -> Iterator[Hub]:
    """The emulated cluster (local processes), the provider and a hub, stopped afterwards.

    ``platform(state)`` may write the platform file to use; ``extra_config(emulator,
    platform_file)`` may add hub configuration; ``extra_nodes`` join the example's nodes.
    The hub's and the provider's logs are printed when the block fails.
    """
    cluster = load_cluster_file(EXAMPLES / "cluster.yaml")
    cluster = cluster.model_copy(update={"nodes": [*cluster.nodes, *extra_nodes]})
    emulator = Emulator(cluster, state_dir=state / "emulator", run_processes=True).start()
    (proxy_port,), client_secret = free_ports(1), secrets.token_urlsafe(24)
    provider = LocalOIDCProvider(
        provider_settings(proxy_port, client_secret, access_token_ttl), state / "oidc"
    ).start()
    platform_file = platform(state) if platform else platform_without_storage(state / "config")
    running = None
    try:
        running = start_hub(
            state / "hub",
            emulator,
            provider,
            proxy_port=proxy_port,
            client_secret=client_secret,
            platform=platform_file,
            extra_config=extra_config(emulator, platform_file) if extra_config else "",
            **hub_options,
        )
        yield running
    except BaseException:
        if running is not None:
            dump(running)
        raise
    finally:
        if running is not None:
            running.process.stop()
            if running.proxy is not None:
                running.proxy.stop()
        provider.stop()
        emulator.stop()
