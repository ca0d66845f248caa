"""The hub configuration from environment variables: what ``jupyterhub_config.py`` runs.

One configuration for the local platform and for the Zero-to-JupyterHub chart: only addresses,
ports, paths and secrets' file names come from the environment. Reading it does no I/O but
loading the platform configuration, which stops the hub with the path of a bad key.

| variable | meaning |
|---|---|
| ``AIINFN_PLATFORM_CONFIG`` | platform configuration YAML (required) |
| ``AIINFN_IAM_ISSUER`` | IAM issuer URL (required) |
| ``AIINFN_IAM_CLIENT_ID`` | OAuth client id (default ``aiinfn-hub``) |
| ``AIINFN_IAM_CLIENT_SECRET_FILE`` | file holding the client secret (required) |
| ``AIINFN_ADMIN_GROUPS`` | comma-separated IAM groups of hub admins (default ``platform-admins``) |
| ``AIINFN_OFFLOAD_GROUPS`` | comma-separated groups allowed to offload Bunshin jobs |
| ``AIINFN_PUBLIC_URL`` | the hub's public URL, e.g. ``https://hub.example.org`` (OAuth callback) |
| ``AIINFN_STORAGE_AUDIENCE`` | audience of the storage token exchange (empty: none) |
| ``AIINFN_BUNSHIN_URL`` | where the Bunshin service listens (default ``http://127.0.0.1:10101``) |
| ``AIINFN_BUNSHIN_MANAGED`` | ``1``: the hub runs the service itself (local platform, hub pod) |
| ``AIINFN_SERVICE_BIND_HOST`` | the service's listening address, if not its URL's host (hub pod) |
| ``AIINFN_STATE_DIR`` | folder of the hub's database and cookie secret (local platform) |
| ``AIINFN_HUB_PORT`` | port of the proxy (local platform, default 8000) |
| ``AIINFN_HUB_API_PORT``, ``AIINFN_PROXY_API_PORT`` | the hub's and the proxy's own ports (local) |
| ``AIINFN_HUB_API_IP`` | the hub API's one address (local: 127.0.0.1, or the pods' gateway) |
| ``AIINFN_LOCAL_PROCESSES`` | ``1``: single-user servers bind the pod IP the emulator gives |
| ``AIINFN_SERVER_IP`` | what those servers bind instead: ``0.0.0.0`` when pods have namespaces |
| ``AIINFN_NAMESPACE`` | namespace of the servers (default ``jupyterhub``) |
| ``AIINFN_NOTEBOOK_PRIORITY`` | PriorityClass of notebook pods, e.g. ``notebook`` (default: none) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .config import PlatformConfigError, config_provider
from .hub_setup import configure_hub


class ConfigurationError(SystemExit):
    """A missing or bad variable: stops the hub with one clear line."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(
            f"jupyterhub_config.py: set {name} (see aiinfn_hub/hub_environment.py)"
        )
    return value


def _groups(env: Mapping[str, str], name: str, default: str = "") -> list[str]:
    return [g.strip() for g in env.get(name, default).split(",") if g.strip()]


def _hub_api_ip(env: Mapping[str, str]) -> str:
    """``AIINFN_HUB_API_IP``: JupyterHub binds its API on one address, which it also gives
    everyone who calls it; pods with network namespaces of their own call it at their gateway
    (this machine's address on their bridge), which the proxy and services on this machine
    reach too. Every interface would include the LAN's: refused."""
    ip = env["AIINFN_HUB_API_IP"].strip()
    if ip in ("", "0.0.0.0", "::", "*"):  # JupyterHub takes "" for every interface too
        raise ConfigurationError(
            f"jupyterhub_config.py: AIINFN_HUB_API_IP={ip} would open the hub's API to every "
            "network: give one address (127.0.0.1, or the pods' gateway)"
        )
    return ip


def configure_from_environment(c: Any, env: Mapping[str, str] | None = None) -> None:
    """Set the hub configuration ``c`` from ``env`` (default: ``os.environ``)."""
    from .bunshin.hub_config import configure_bunshin

    env = os.environ if env is None else env
    platform_file = _required(env, "AIINFN_PLATFORM_CONFIG")
    try:
        # fail early, with the bad key's path; the spawner and authenticator share this provider
        config_provider(platform_file).current()
    except PlatformConfigError as exc:
        raise ConfigurationError(f"jupyterhub_config.py: {exc}") from None
    configure_hub(c, platform_file)

    admin_groups = _groups(env, "AIINFN_ADMIN_GROUPS", "platform-admins")
    c.IAMAuthenticator.issuer = _required(env, "AIINFN_IAM_ISSUER")
    c.IAMAuthenticator.client_id = env.get("AIINFN_IAM_CLIENT_ID", "aiinfn-hub")
    c.IAMAuthenticator.client_secret_file = _required(env, "AIINFN_IAM_CLIENT_SECRET_FILE")
    c.IAMAuthenticator.admin_groups = set(admin_groups)
    public = env.get("AIINFN_PUBLIC_URL", "").rstrip("/")
    if public:
        c.IAMAuthenticator.oauth_callback_url = f"{public}/hub/oauth_callback"
        c.IAMAuthenticator.post_logout_redirect_url = f"{public}/hub/login"
    if env.get("AIINFN_STORAGE_AUDIENCE"):
        c.IAMAuthenticator.storage_token_audience = env["AIINFN_STORAGE_AUDIENCE"]

    managed = env.get("AIINFN_BUNSHIN_MANAGED") == "1"
    bunshin_url = env.get("AIINFN_BUNSHIN_URL", "http://127.0.0.1:10101")
    passed = ("KUBECONFIG", "PATH", "POD_NAMESPACE", "AIINFN_SERVICE_BIND_HOST")
    service_env = {k: env[k] for k in passed if k in env}
    # the service refuses to run jobs in the servers' namespace: it must know which it is
    service_env["AIINFN_NAMESPACE"] = env.get("AIINFN_NAMESPACE", "jupyterhub")
    configure_bunshin(
        c,
        platform_file,
        bunshin_url,
        managed=managed,
        environment=service_env,
        offload_groups=_groups(env, "AIINFN_OFFLOAD_GROUPS"),
        admin_groups=admin_groups,
    )

    state = env.get("AIINFN_STATE_DIR")
    if state:
        c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
        c.JupyterHub.cookie_secret_file = f"{state}/jupyterhub_cookie_secret"
        c.ConfigurableHTTPProxy.pid_file = f"{state}/proxy.pid"
    if env.get("AIINFN_HUB_PORT"):
        c.JupyterHub.ip = "127.0.0.1"
        c.JupyterHub.port = int(env["AIINFN_HUB_PORT"])
        c.JupyterHub.hub_ip = "127.0.0.1"
    if env.get("AIINFN_HUB_API_IP"):
        c.JupyterHub.hub_ip = _hub_api_ip(env)
    if env.get("AIINFN_HUB_API_PORT"):
        c.JupyterHub.hub_port = int(env["AIINFN_HUB_API_PORT"])
    if env.get("AIINFN_PROXY_API_PORT"):
        c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['AIINFN_PROXY_API_PORT']}"
    if env.get("AIINFN_LOCAL_PROCESSES") == "1":
        # pods sharing this machine's network have a loopback IP each: the server binds it
        # (valid on a cluster too); a pod with a network namespace of its own may bind all of
        # its addresses (its localhost too, where `kubectl port-forward` dials), as on a cluster
        c.AIInfnSpawner.cmd = ["jupyterhub-singleuser"]
        c.AIInfnSpawner.environment = {
            "POD_IP": {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        }
        server_ip = env.get("AIINFN_SERVER_IP", "").strip() or "$(POD_IP)"
        c.AIInfnSpawner.args = [f"--ServerApp.ip={server_ip}", "--allow-root"]
        c.AIInfnSpawner.start_timeout = 120
        c.AIInfnSpawner.http_timeout = 90
    c.AIInfnSpawner.namespace = env.get("AIINFN_NAMESPACE", "jupyterhub")
    # a PriorityClass that does not exist would make every pod be refused: none unless named
    c.AIInfnSpawner.notebook_priority_class = env.get("AIINFN_NOTEBOOK_PRIORITY", "")
