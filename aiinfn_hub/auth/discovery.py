"""OpenID Connect discovery: the provider's endpoints from ``/.well-known/openid-configuration``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"


class DiscoveryError(RuntimeError):
    """The discovery document is unreachable or unusable; the message says which and why."""


@dataclass(frozen=True)
class ProviderEndpoints:
    """What the hub uses of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    end_session_endpoint: str = ""
    revocation_endpoint: str = ""
    grant_types_supported: tuple[str, ...] = ()

    @property
    def supports_token_exchange(self) -> bool:
        return TOKEN_EXCHANGE_GRANT in self.grant_types_supported


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def _same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def parse_discovery(document: Any, issuer: str) -> ProviderEndpoints:
    """Check a discovery document against the configured issuer (OIDC Discovery 1.0, 4.3).

    The issuer must match exactly (a mismatch is how a mis-typed or hijacked URL shows), and
    every endpoint the hub calls must be an absolute http(s) URL.
    """
    where = discovery_url(issuer)
    if not isinstance(document, dict):
        raise DiscoveryError(f"{where} did not return a JSON object")
    found = document.get("issuer")
    if not isinstance(found, str) or not _same_issuer(found, issuer):
        raise DiscoveryError(
            f"{where} names issuer {found!r}, not the configured {issuer!r}; "
            "check IAMAuthenticator.issuer"
        )

    def url(key: str, required: bool = True) -> str:
        value = document.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise DiscoveryError(f"{where}: {key} is missing or not an http(s) URL: {value!r}")
        return value

    grants = document.get("grant_types_supported", ["authorization_code", "implicit"])
    if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
        raise DiscoveryError(f"{where}: grant_types_supported is not a list of strings")
    return ProviderEndpoints(
        issuer=found,
        authorization_endpoint=url("authorization_endpoint"),
        token_endpoint=url("token_endpoint"),
        userinfo_endpoint=url("userinfo_endpoint"),
        jwks_uri=url("jwks_uri"),
        end_session_endpoint=url("end_session_endpoint", required=False),
        revocation_endpoint=url("revocation_endpoint", required=False),
        grant_types_supported=tuple(grants),
    )
