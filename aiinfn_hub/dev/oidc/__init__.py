"""The local OpenID Connect provider standing in for INDIGO IAM (tests and local platform)."""

from .server import DemoUser, LocalOIDCProvider, OIDCClient, ProviderSettings

__all__ = ["DemoUser", "LocalOIDCProvider", "OIDCClient", "ProviderSettings"]
