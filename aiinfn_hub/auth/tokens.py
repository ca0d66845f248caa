"""Token lifetimes and requests to the token endpoint, as pure functions of ``auth_state``.

``auth_state`` (encrypted by the hub) holds, besides oauthenticator's keys:

- ``expires_at``: when the access token expires (epoch seconds, from ``expires_in``);
- ``storage_token``: ``{"access_token", "expires_at", "audience", "scope"}``, the narrower token
  obtained by token exchange for the storage mounts, or ``None``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from .discovery import TOKEN_EXCHANGE_GRANT

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# without expires_in we assume the token lasts this long, so it is renewed regularly anyway
ASSUMED_LIFETIME = 300.0


def expires_at(token_response: dict[str, Any], now: float | None = None) -> float:
    """Expiry time of the access token in a token endpoint response."""
    now = time.time() if now is None else now
    lifetime = token_response.get("expires_in")
    try:
        seconds = float(lifetime) if lifetime is not None else ASSUMED_LIFETIME
    except (TypeError, ValueError):
        seconds = ASSUMED_LIFETIME
    return now + max(0.0, seconds)


def first_expiry(auth_state: dict[str, Any]) -> float:
    """When the first of the login and storage tokens expires (0: unknown, treat as expired)."""
    times = [float(auth_state.get("expires_at") or 0)]
    storage = auth_state.get("storage_token")
    if isinstance(storage, dict):
        times.append(float(storage.get("expires_at") or 0))
    return min(times)


def needs_refresh(auth_state: dict[str, Any], margin: float, now: float | None = None) -> bool:
    """Whether a token in ``auth_state`` expires within ``margin`` seconds."""
    now = time.time() if now is None else now
    return first_expiry(auth_state) - now <= margin


def is_expired(auth_state: dict[str, Any], now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return float(auth_state.get("expires_at") or 0) <= now


def refresh_params(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


def exchange_params(access_token: str, audience: str, scopes: list[str]) -> dict[str, str]:
    """RFC 8693 request for a token restricted to ``audience`` and ``scopes``."""
    params = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": access_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "audience": audience,
    }
    if scopes:
        params["scope"] = " ".join(scopes)
    return params


def storage_token_entry(
    response: dict[str, Any], audience: str, now: float | None = None
) -> dict[str, Any]:
    """The ``storage_token`` entry of ``auth_state`` from a token exchange response."""
    return {
        "access_token": response["access_token"],
        "expires_at": expires_at(response, now),
        "audience": audience,
        "scope": response.get("scope", ""),
    }


def secret_values(auth_state: dict[str, Any] | None) -> list[str]:
    """Every secret string in ``auth_state`` (tokens), e.g. to check logs never contain them."""
    if not auth_state:
        return []
    values = [auth_state.get(k) for k in ("access_token", "refresh_token", "id_token")]
    storage = auth_state.get("storage_token")
    if isinstance(storage, dict):
        values.append(storage.get("access_token"))
    return [v for v in values if isinstance(v, str) and v]


def fingerprint(token: str) -> str:
    """A short one-way digest, to recognise a token without keeping it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


# oauthenticator's keys that hold tokens (token_response is the whole token endpoint answer)
TOKEN_KEYS = ("access_token", "refresh_token", "id_token", "token_response", "storage_token")


def without_tokens(auth_state: dict[str, Any]) -> dict[str, Any]:
    """``auth_state`` after logout: the claims stay (groups, name), every token goes."""
    state = {k: v for k, v in auth_state.items() if k not in TOKEN_KEYS}
    state["expires_at"] = 0
    return state


def revocation_params(refresh_token: str) -> dict[str, str]:
    """RFC 7009 request revoking a refresh token (and, at IAM, the grant behind it)."""
    return {"token": refresh_token, "token_type_hint": "refresh_token"}
