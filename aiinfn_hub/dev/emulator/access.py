"""Who may reach the emulator's API: loopback addresses only, and only with its bearer token.

The emulator's API creates pods, and in process mode a pod's command runs on this machine, so
an unauthenticated API on a reachable address would be remote code execution. Every start
makes a new random token, written into the kubeconfig the emulator writes (mode 0600); each
request must carry it as ``Authorization: Bearer <token>`` (what kubectl and the Python
clients send for a kubeconfig user with ``token:``), over HTTPS (see ``tls``). A web page in
a browser on this machine cannot learn it, so it cannot drive the API either.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import ssl
from dataclasses import dataclass

from .tls import client_context

# the words of kube-apiserver's answer to a request without valid credentials
UNAUTHORIZED_MESSAGE = "Unauthorized"


def new_token() -> str:
    """A fresh bearer token (256 bits, URL-safe, so it fits a kubeconfig and a header)."""
    return secrets.token_urlsafe(32)


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` as a bearer token.

    The comparison takes the same time wherever the first wrong character is, so the token
    cannot be guessed one character at a time from response times.
    """
    if not token or not authorization:
        return False
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def is_loopback_host(host: str) -> bool:
    """Whether listening on ``host`` keeps the API reachable from this machine only.

    True for ``localhost`` and for addresses in 127.0.0.0/8 or ``::1`` (also written as an
    IPv4-mapped IPv6 address); False for everything else, including ``""``, ``0.0.0.0`` and
    ``::`` (every interface) and other host names, whose addresses this does not trust.
    """
    name = host.strip().rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True)
class ApiAccess:
    """What a raw HTTP client needs to reach a running emulator: the URL, the bearer token and
    the CA its certificate is signed by (the kubeconfig carries the same three)."""

    url: str
    token: str
    ca_pem: bytes

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization: Bearer <token>``, for every request."""
        return {"Authorization": f"Bearer {self.token}"}

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context trusting the emulator's CA only."""
        return client_context(self.ca_pem)
