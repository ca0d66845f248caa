"""Plain JSON over kubernetes_asyncio's configured client: paths in, dicts out.

The typed clients turn every object into generated classes; the service code works with the
JSON the API server sends (as the builders produce it), so this thin layer only adds the
cluster's address and credentials and turns failures into :class:`KubeError`, which names the
object (kind, namespace, name) the call was about. No module outside this package catches
kubernetes_asyncio's ``ApiException``: code on a typed client wraps its calls in
:func:`kube_call` instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client

JSON = dict[str, Any]
T = TypeVar("T")
# resource (the path's plural) -> kind, for the messages of errors
_KINDS = {
    "clusterqueues": "ClusterQueue",
    "configmaps": "ConfigMap",
    "events": "Event",
    "jobs": "Job",
    "localqueues": "LocalQueue",
    "namespaces": "Namespace",
    "nodes": "Node",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "pods": "Pod",
    "priorityclasses": "PriorityClass",
    "resourceflavors": "ResourceFlavor",
    "secrets": "Secret",
    "serviceaccounts": "ServiceAccount",
    "services": "Service",
    "workloadpriorityclasses": "WorkloadPriorityClass",
    "workloads": "Workload",
}


class KubeError(Exception):
    """A failed API call: HTTP status (0 when unreachable), reason, the server's message, and
    the object it was about (``kind``, ``namespace``, ``name``: empty when not known, ``name``
    empty for a list). ``str()`` reads ``Job bunshin/bunshin-abc-x1: 409 AlreadyExists: ...``."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        kind: str = "",
        namespace: str = "",
        name: str = "",
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.kind = kind
        self.namespace = namespace
        self.name = name
        where = self.subject
        super().__init__(f"{where}: {status} {reason}: {message}" if where else self.detail)

    @property
    def detail(self) -> str:
        """``409 AlreadyExists: <the server's message>``."""
        return f"{self.status} {self.reason}: {self.message}"

    @property
    def subject(self) -> str:
        """What the call was about: ``Job bunshin/x``, ``Node n1``, ``Job list in bunshin``."""
        if not self.kind:
            return ""
        if self.name and self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        if self.name:
            return f"{self.kind} {self.name}"
        if self.namespace:
            return f"{self.kind} list in {self.namespace}"
        return f"{self.kind} list"

    @property
    def not_found(self) -> bool:
        """404: the object (or its kind) does not exist."""
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409: the name is taken (create) or the object changed meanwhile (update)."""
        return self.status == 409

    @property
    def unavailable(self) -> bool:
        """The cluster did not answer or could not serve the call now (unreachable, 429, 5xx):
        the same call may work later; it says nothing about the object."""
        return _unavailable_status(self.status)


def _unavailable_status(status: int) -> bool:
    return status == 0 or status == 429 or status >= 500


def cluster_unavailable(exc: BaseException) -> bool:
    """Whether ``exc``, raised by our calls or by kubespawner's (which lets the client's
    ``ApiException`` and network errors through), means the cluster is not answering now."""
    if isinstance(exc, KubeError):
        return exc.unavailable
    if isinstance(exc, client.ApiException):
        return _unavailable_status(int(exc.status or 0))
    return isinstance(exc, OSError | TimeoutError | aiohttp.ClientError)


def object_of_path(path: str, body: Any = None) -> tuple[str, str, str]:
    """``(kind, namespace, name)`` of an API path (``/api/v1/namespaces/ns/pods/p/log`` ->
    ``("Pod", "ns", "p")``); a create names its object in the body's metadata."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return "", "", ""
    namespace = ""
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return "", namespace, ""
    kind = _KINDS.get(rest[0], rest[0])
    name = rest[1] if len(rest) > 1 else ""
    if not name and isinstance(body, dict):
        name = str((body.get("metadata") or {}).get("name") or "")
        namespace = namespace or str((body.get("metadata") or {}).get("namespace") or "")
    return kind, namespace, name


class KubeRest:
    """``get``/``post``/``put``/``patch``/``delete`` JSON on API paths (``/api/v1/...``)."""

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
        """One request; raises :class:`KubeError` naming the object of ``path``."""
        headers = {"Accept": "text/plain" if text else "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        kind, namespace, name = object_of_path(path, body if method == "POST" else None)
        where = {"kind": kind, "namespace": namespace, "name": name}
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
            raise _error(exc, **where) from None
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__, **where) from None
        try:
            data = await response.read()
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__, **where) from None
        if response.status >= 400:  # without preloading, errors come back as responses
            raise _status_error(int(response.status), str(response.reason or ""), data, **where)
        if text:
            return data.decode(errors="replace")
        return json.loads(data) if data else None

    async def get(self, path: str, **query: Any) -> Any:
        """The object or list at ``path`` (``query``: e.g. ``labelSelector``)."""
        return await self.call("GET", path, query=query)

    async def get_or_none(self, path: str, **query: Any) -> Any:
        """The object, or None when it does not exist (404)."""
        try:
            return await self.get(path, **query)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def post(self, path: str, body: JSON) -> Any:
        """Create ``body`` in the collection at ``path``."""
        return await self.call("POST", path, body)

    async def put(self, path: str, body: JSON) -> Any:
        """Replace the object (``body`` carries the ``resourceVersion`` it replaces)."""
        return await self.call("PUT", path, body)

    async def merge_patch(self, path: str, body: JSON) -> Any:
        """Apply a JSON merge patch (RFC 7386) to the object at ``path``."""
        return await self.call("PATCH", path, body, content_type="application/merge-patch+json")

    async def delete(self, path: str, propagation: str = "Background") -> Any:
        """Delete the object at ``path`` with what it owns (``propagation``)."""
        return await self.call(
            "DELETE",
            path,
            {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation},
        )


async def kube_call(call: Awaitable[T], kind: str, namespace: str = "", name: str = "") -> T:
    """Await a typed client's call (e.g. ``CoreV1Api.create_namespaced_secret(...)``), turning
    its ``ApiException`` (or an unreachable server) into :class:`KubeError` naming the object::

        try:
            await kube_call(api.delete_namespaced_secret(name, ns), "Secret", ns, name)
        except KubeError as exc:
            if not exc.not_found:
                raise
    """
    where = {"kind": kind, "namespace": namespace, "name": name}
    try:
        return await call
    except client.ApiException as exc:
        raise _error(exc, **where) from None
    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
        raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__, **where) from None


def _status_error(status: int, reason: str, data: bytes, **where: str) -> KubeError:
    """A KubeError from an error response's ``Status`` body (or its HTTP reason)."""
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return KubeError(
        status,
        str(body.get("reason") or reason or "Error"),
        str(body.get("message") or reason),
        **where,
    )


def _error(exc: client.ApiException, **where: str) -> KubeError:
    message = exc.reason or ""
    try:
        status = json.loads(exc.body or b"{}")
        message = status.get("message") or message
        reason = status.get("reason") or exc.reason or "Error"
    except (ValueError, AttributeError):
        reason = exc.reason or "Error"
    return KubeError(int(exc.status or 0), str(reason), str(message), **where)
