"""The per-user token Secret that storage mounts read the user's IAM token from (pure builders).

One Secret per user, ``aiinfn-token-<user slug>`` in the hub's namespace, key ``token``. The hub
creates it at spawn, rewrites it whenever the token is renewed while a server runs (the kubelet
then updates the file in every pod that mounts the Secret as a whole volume), and deletes it when
the user's last server stops. It has no owner references: nothing the user controls (a pod) can
take it along, and only the hub's service account writes it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from ..platform import vocabulary as v
from ..platform.names import user_slug

TOKEN_KEY = v.TOKEN_KEY


def token_secret_name(username: str) -> str:
    """A valid Secret name that no other user can share (see :mod:`aiinfn_hub.platform.names`)."""
    return v.TOKEN_SECRET_PREFIX + user_slug(username)


def token_secret_labels(username: str) -> dict[str, str]:
    user_label = user_slug(username)
    return {
        v.MANAGED_BY: v.MANAGER_HUB,
        v.COMPONENT: v.COMPONENT_TOKEN,
        v.HUB_USERNAME: user_label,
    }


def token_secret_manifest(
    username: str, namespace: str, token: str, expires_at: float
) -> dict[str, Any]:
    """The Secret holding ``token`` for ``username``; the expiry is an annotation, for admins."""
    expiry = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": token_secret_name(username),
            "namespace": namespace,
            "labels": token_secret_labels(username),
            "annotations": {v.TOKEN_EXPIRES_AT: expiry},
        },
        "type": "Opaque",
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }
