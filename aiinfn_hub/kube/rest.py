"""Plain JSON over kubernetes_asyncio's configured client: paths in, dicts out.

The typed clients turn every object into generated classes; the service code works with the
JSON the API server sends (as the builders produce it), so this thin layer only adds the
cluster's address and credentials and turns failures into :class:`KubeError`.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio import client

JSON = dict[str, Any]


class KubeError(Exception):
    """A failed API call: HTTP status (0 when unreachable), reason and the server's message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class KubeRest:
    """``get``/``post``/``patch``/``delete`` JSON on API paths (``/api/v1/...``)."""

    def __init__(self, api_client: client.ApiClient, timeout: float = 20.0) -> None:
        self.api_client = api_client
        self.timeout = timeout

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
        text: bool = False,
    ) -> Any:
        headers = {"Accept": "text/plain" if text else "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            response = await self.api_client.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=self.timeout,
            )
        except client.ApiException as exc:
            raise _error(exc) from None
        except (OSError, TimeoutError) as exc:
            raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__) from None
        data = await response.read()
        if response.status >= 400:  # without preloading, errors come back as responses
            raise _status_error(int(response.status), str(response.reason or ""), data)
        if text:
            return data.decode(errors="replace")
        return json.loads(data) if data else None

    async def get(self, path: str, **query: Any) -> Any:
        return await self.call("GET", path, query=query)

    async def post(self, path: str, body: JSON) -> Any:
        return await self.call("POST", path, body)

    async def merge_patch(self, path: str, body: JSON) -> Any:
        return await self.call("PATCH", path, body, content_type="application/merge-patch+json")

    async def delete(self, path: str, propagation: str = "Background") -> Any:
        return await self.call(
            "DELETE",
            path,
            {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation},
        )


def _status_error(status: int, reason: str, data: bytes) -> KubeError:
    """A KubeError from an error response's ``Status`` body (or its HTTP reason)."""
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return KubeError(
        status, str(body.get("reason") or reason or "Error"), str(body.get("message") or reason)
    )


def _error(exc: client.ApiException) -> KubeError:
    message = exc.reason or ""
    try:
        status = json.loads(exc.body or b"{}")
        message = status.get("message") or message
        reason = status.get("reason") or exc.reason or "Error"
    except (ValueError, AttributeError):
        reason = exc.reason or "Error"
    return KubeError(int(exc.status or 0), str(reason), str(message))
