"""Plain HTTP to the emulated cluster and waiting on conditions: what the emulator's contract
tests share (imported by name; ``tests/`` is on the path through its conftest)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiinfn_hub.dev.emulator.access import ApiAccess


class RawClient:
    """Plain HTTP to the emulator, to check the exact JSON and status codes it answers; it
    sends the emulator's bearer token with every request and trusts the emulator's CA."""

    def __init__(self, access: ApiAccess) -> None:
        self.base_url = access.url
        self.auth_headers = access.headers
        self.context = access.ssl_context()

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """``body`` sent as JSON, or ``raw`` bytes as they are."""
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        for key, value in self.auth_headers.items():
            req.add_header(key, value)
        if data is not None:
            req.add_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.context) as resp:
                text = resp.read().decode()
                status, hdrs = resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            text, status, hdrs = exc.read().decode(), exc.code, dict(exc.headers)
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return status, parsed, hdrs

    def get(self, path: str, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: object, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self.request("POST", path, body, **kw)

    def watch_lines(self, path: str, timeout: float = 10) -> list[dict[str, Any]]:
        """Read a watch stream to its end (use ``timeoutSeconds`` in ``path``)."""
        req = urllib.request.Request(self.base_url + path, headers=self.auth_headers)
        with urllib.request.urlopen(req, timeout=timeout, context=self.context) as resp:
            return [json.loads(line) for line in resp.read().decode().splitlines() if line]


def wait_until(predicate: Any, timeout: float = 10, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (tests wait on conditions)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
