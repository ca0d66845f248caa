"""Run the local OpenID Connect provider (``provider.mjs``, built on npm ``oidc-provider``).

It stands in for INDIGO IAM on the local platform and in the tests: discovery, authorization
code flow with PKCE, rotating refresh tokens, JWKS, end-session, revocation, introspection and
RFC 8693 token exchange, with demo accounts whose claims carry ``wlcg.groups``. It binds to
127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from ..node_tools import node_modules_dir
from ..processes import LocalService, ManagedProcess, ProcessError, answers, free_port

PROVIDER_SCRIPT = Path(__file__).with_name("provider.mjs")


@dataclass(frozen=True)
class DemoUser:
    """An account of the local provider.

    ``claims``, when given, replaces the standard claims (``preferred_username``, ``email``,
    ``wlcg.groups``...) so tests can serve missing or malformed ones.
    """

    username: str
    password: str
    groups: tuple[str, ...] = ()
    email: str = ""
    name: str = ""
    claims: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "groups": list(self.groups),
            "email": self.email or f"{self.username}@example.org",
            "name": self.name or self.username,
        }
        if self.claims is not None:
            data["claims"] = self.claims
        return data


@dataclass(frozen=True)
class OIDCClient:
    """A confidential client (the hub) registered with the provider."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }


@dataclass
class ProviderSettings:
    """Everything the provider process is started with (written as JSON for it)."""

    users: list[DemoUser]
    clients: list[OIDCClient]
    port: int = 0
    host: str = "127.0.0.1"
    access_token_ttl: int = 3600
    id_token_ttl: int = 3600
    refresh_token_ttl: int = 14 * 24 * 3600
    #: audience -> space-separated scopes a token exchange may grant for it
    exchange_audiences: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_json(self, keys_file: Path | None, store_file: Path | None = None) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "host": self.host,
            "port": self.port,
            "keysFile": str(keys_file) if keys_file else None,
            "storeFile": str(store_file) if store_file else None,
            "users": [user.to_json() for user in self.users],
            "clients": [client.to_json() for client in self.clients],
            "ttl": {
                "accessToken": self.access_token_ttl,
                "idToken": self.id_token_ttl,
                "refreshToken": self.refresh_token_ttl,
            },
            "exchangeAudiences": {
                audience: {"scopes": scopes} for audience, scopes in self.exchange_audiences.items()
            },
        }


class LocalOIDCProvider(LocalService):
    """The provider as a child process: ``start()`` returns once discovery answers.

    State (signing keys, settings, log, and the grants, sessions and tokens it issued) lives in
    ``state_dir`` and is reused on the next start, as a real IAM's database outlives its
    restarts: tokens issued before stay verifiable and refresh tokens stay usable, so an
    outage of the provider logs nobody out.
    """

    def __init__(
        self, settings: ProviderSettings, state_dir: Path, node_modules: Path | None = None
    ) -> None:
        if settings.port == 0:
            settings.port = free_port(settings.host)
        self.settings = settings
        self.state_dir = state_dir
        self.node_modules = node_modules
        self.process: ManagedProcess | None = None

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @property
    def log_path(self) -> Path:
        return self.state_dir / "oidc-provider.log"

    def start(self, timeout: float = 90.0) -> Self:
        node = shutil.which("node")
        if node is None:
            raise ProcessError("node is not installed: run scripts/setup (Debian package nodejs)")
        modules = self.node_modules or node_modules_dir()
        if not (modules / "oidc-provider").is_dir():
            raise ProcessError(
                f"npm package oidc-provider is missing from {modules}: run scripts/setup"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        settings_file = self.state_dir / "oidc-provider.json"
        settings_file.write_text(
            json.dumps(
                self.settings.to_json(
                    self.state_dir / "oidc-keys.json", self.state_dir / "oidc-store.json"
                ),
                indent=2,
            )
        )
        settings_file.chmod(0o600)
        env = dict(os.environ, AIINFN_NODE_MODULES=str(modules), NODE_ENV="production")
        self.process = ManagedProcess(
            "the OpenID provider",
            [node, str(PROVIDER_SCRIPT), str(settings_file)],
            self.log_path,
            env=env,
        ).start()
        try:
            self.process.wait_until(self.discovery_answers, timeout, "serving discovery")
        except BaseException:
            self.stop()
            raise
        return self

    def discovery_answers(self) -> bool:
        return answers(f"{self.issuer}/.well-known/openid-configuration")

    def discovery(self) -> dict[str, Any]:
        url = f"{self.issuer}/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=5) as response:
            document: dict[str, Any] = json.load(response)
        return document
