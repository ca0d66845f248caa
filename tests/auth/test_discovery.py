"""The provider's discovery document, checked against the configured issuer."""

from __future__ import annotations

from typing import Any

import pytest

from aiinfn_hub.auth.discovery import DiscoveryError, discovery_url, parse_discovery

ISSUER = "https://iam.example.org/"


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": "https://iam.example.org/authorize",
        "token_endpoint": "https://iam.example.org/token",
        "userinfo_endpoint": "https://iam.example.org/userinfo",
        "jwks_uri": "https://iam.example.org/jwk",
        "end_session_endpoint": "https://iam.example.org/logout",
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def test_endpoints_and_token_exchange_support_are_read() -> None:
    endpoints = parse_discovery(document(), ISSUER)
    assert endpoints.token_endpoint == "https://iam.example.org/token"
    assert endpoints.end_session_endpoint == "https://iam.example.org/logout"
    assert endpoints.supports_token_exchange
    assert discovery_url(ISSUER) == "https://iam.example.org/.well-known/openid-configuration"


def test_a_trailing_slash_difference_is_the_same_issuer() -> None:
    assert parse_discovery(document(issuer="https://iam.example.org"), ISSUER).issuer


def test_optional_endpoints_may_be_absent() -> None:
    endpoints = parse_discovery(
        document(end_session_endpoint=None, grant_types_supported=None), ISSUER
    )
    assert endpoints.end_session_endpoint == ""
    assert not endpoints.supports_token_exchange


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "did not return a JSON object"),
        (document(issuer="https://evil.example.org/"), "not the configured"),
        (document(token_endpoint=None), "token_endpoint is missing"),
        (document(userinfo_endpoint="/userinfo"), "userinfo_endpoint is missing or not"),
        (document(jwks_uri=5), "jwks_uri"),
        (document(grant_types_supported="authorization_code"), "grant_types_supported"),
    ],
)
def test_unusable_documents_say_what_is_wrong(doc: Any, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message):
        parse_discovery(doc, ISSUER)
