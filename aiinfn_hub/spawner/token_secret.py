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

from kubespawner.slugs import is_valid_label, safe_slug

TOKEN_KEY = "token"
SECRET_PREFIX = "aiinfn-token-"
COMPONENT = "storage-token"


def token_secret_name(username: str) -> str:
    """A valid, collision-free Secret name for ``username`` (kubespawner's safe slug)."""
    slug: str = safe_slug(username, max_length=63 - len(SECRET_PREFIX))
    return SECRET_PREFIX + slug


def token_secret_labels(username: str) -> dict[str, str]:
    user_label = str(safe_slug(username, is_valid=is_valid_label, max_length=63))
    return {
        "app.kubernetes.io/managed-by": "aiinfn-hub",
        "app.kubernetes.io/component": COMPONENT,
        "hub.jupyter.org/username": user_label,
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
            "annotations": {"aiinfn.infn.it/token-expires-at": expiry},
        },
        "type": "Opaque",
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }
