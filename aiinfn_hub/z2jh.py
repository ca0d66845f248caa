"""The hub configuration from the Zero-to-JupyterHub chart's values: what ``hub.extraConfig``
of ``helm-values/values.yaml`` runs.

The per-site settings live in the chart's free-form ``custom.aiinfn`` values (camelCase like
the rest of the chart); they become the variables of :mod:`aiinfn_hub.hub_environment`, so the
local platform and a cluster share one configuration path. The platform configuration itself
is a file the chart mounts (``hub.extraFiles``); secrets are files of an existing Secret, never
values.

| ``custom.aiinfn`` key | meaning |
|---|---|
| ``platformConfigFile`` | path of the platform configuration in the hub pod (required) |
| ``publicUrl`` | the hub's public URL (OAuth callback) |
| ``iam.issuer``, ``iam.clientId`` | IAM issuer URL (required) and OAuth client id |
| ``iam.clientSecretFile`` | file holding the client secret (required) |
| ``cryptKeyFile`` | file holding the ``auth_state`` encryption key(s), ``;``-separated |
| ``adminGroups``, ``offloadGroups`` | lists of IAM groups (hub admins; Bunshin offloading) |
| ``storageAudience`` | audience of the storage token exchange |
| ``bunshinUrl`` | where the Bunshin service listens (reachable by the proxy and servers) |
| ``notebookPriorityClass`` | PriorityClass of notebook pods (default: the chart's own) |
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config.dotted import dotted_items
from .hub_environment import ConfigurationError, configure_from_environment

# custom.aiinfn key (dotted) -> variable of aiinfn_hub.hub_environment
SETTINGS: Mapping[str, str] = {
    "platformConfigFile": "AIINFN_PLATFORM_CONFIG",
    "publicUrl": "AIINFN_PUBLIC_URL",
    "iam.issuer": "AIINFN_IAM_ISSUER",
    "iam.clientId": "AIINFN_IAM_CLIENT_ID",
    "iam.clientSecretFile": "AIINFN_IAM_CLIENT_SECRET_FILE",
    "adminGroups": "AIINFN_ADMIN_GROUPS",
    "offloadGroups": "AIINFN_OFFLOAD_GROUPS",
    "storageAudience": "AIINFN_STORAGE_AUDIENCE",
    "bunshinUrl": "AIINFN_BUNSHIN_URL",
    "notebookPriorityClass": "AIINFN_NOTEBOOK_PRIORITY",
}
# keys read here rather than handed to hub_environment
OWN_KEYS = frozenset({"cryptKeyFile"})
# variables of the hub pod's environment that keep their meaning on a cluster
PASSED_THROUGH = ("KUBECONFIG", "PATH", "POD_NAMESPACE")


def environment_from_values(
    aiinfn: Mapping[str, Any], pod_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The :mod:`aiinfn_hub.hub_environment` variables for the ``custom.aiinfn`` values.

    An unknown key stops the hub naming it (``custom.aiinfn.<key>``); lists become
    comma-separated; the servers' namespace is the hub's own (``POD_NAMESPACE``, set by the
    chart). The Bunshin service runs in the hub pod (``AIINFN_BUNSHIN_MANAGED=1``).
    """
    pod_env = os.environ if pod_env is None else pod_env
    env = {k: pod_env[k] for k in PASSED_THROUGH if k in pod_env}
    for key, value in dotted_items(aiinfn).items():
        if key in OWN_KEYS:
            continue
        if key not in SETTINGS:
            known = ", ".join(sorted([*SETTINGS, *OWN_KEYS]))
            raise ConfigurationError(f"custom.aiinfn.{key}: unknown key (known: {known})")
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[SETTINGS[key]] = str(value)
    env["AIINFN_NAMESPACE"] = pod_env.get("POD_NAMESPACE", "jupyterhub")
    env["AIINFN_BUNSHIN_MANAGED"] = "1"
    # its URL names the hub's Service, which the pod cannot bind: it listens on the pod's own
    env["AIINFN_SERVICE_BIND_HOST"] = "0.0.0.0"
    return env


def read_crypt_keys(path: str) -> list[str]:
    """The ``auth_state`` encryption keys in ``path`` (``;``-separated, newest first)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(
            f"custom.aiinfn.cryptKeyFile: cannot read {path}: {exc.strerror}"
        ) from None
    keys = [k.strip() for k in text.split(";") if k.strip()]
    if not keys:
        raise ConfigurationError(f"custom.aiinfn.cryptKeyFile: {path} is empty")
    return keys


def configure_from_z2jh(
    c: Any,
    get_config: Callable[..., Any],
    get_name: Callable[[str], str] | None = None,
    pod_env: Mapping[str, str] | None = None,
) -> None:
    """Set the hub configuration ``c`` from the chart's values, after the chart's own.

    ``get_config`` and ``get_name`` are the chart's helpers (``z2jh.get_config``,
    ``z2jh.get_name``, in scope of ``hub.extraConfig``). Notebook pods keep the chart's
    PriorityClass (``scheduling.podPriority``) unless ``notebookPriorityClass`` names one, and
    the spawner is told which it is (it reads its value to rank notebooks above batch jobs).
    """
    aiinfn = get_config("custom.aiinfn", None)
    if not isinstance(aiinfn, Mapping):
        raise ConfigurationError("custom.aiinfn: set the aiinfn-hub settings (a mapping)")
    env = environment_from_values(aiinfn, pod_env)
    if (
        "AIINFN_NOTEBOOK_PRIORITY" not in env
        and get_name is not None
        and get_config("scheduling.podPriority.enabled", False)
    ):
        env["AIINFN_NOTEBOOK_PRIORITY"] = get_name("priority")
    configure_from_environment(c, env)
    crypt_key_file = aiinfn.get("cryptKeyFile")
    if crypt_key_file:
        # replaces the keys the chart generated into its own Secret
        c.CryptKeeper.keys = read_crypt_keys(str(crypt_key_file))
