"""Shared fixtures of the API server tests: the bare API (no controllers) on the test's loop.

``ApiServer`` is a ``Store``, ``Faults`` and ``make_app`` listening on 127.0.0.1 port 0, with
the ``default`` and ``kube-system`` namespaces and two Ready nodes created straight in the
store. It speaks HTTPS with a CA of its own, like the emulator; every client trusts that CA and
sends the bearer token (``auth=False`` leaves it out of a raw request). Clients: raw HTTP
(``request``/``watch``), kubernetes_asyncio (``kube_client``), the sync ``kubernetes`` client
(``sync_client``, run it in a thread) and kubectl (``kubectl``). Test modules define their
fixtures from ``running_api`` (as the controller tests do).

Nothing here sleeps blindly: ``wait_for`` polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from aiinfn_hub.dev.emulator.access import ApiAccess, new_token
from aiinfn_hub.dev.emulator.api.app import make_app
from aiinfn_hub.dev.emulator.api.faults import Faults
from aiinfn_hub.dev.emulator.kubeconfig import write_kubeconfig
from aiinfn_hub.dev.emulator.resources import NAMESPACES, NODES, SERVICEACCOUNTS
from aiinfn_hub.dev.emulator.store import Store
from aiinfn_hub.dev.emulator.tls import make_serving_certificate, serving_hosts

JSON = dict[str, Any]
NS = "/api/v1/namespaces/default"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
KUBECTL = shutil.which("kubectl")


@dataclass
class Response:
    """An HTTP answer: status code, parsed JSON body (or text) and headers."""

    code: int
    body: Any
    headers: dict[str, str]
    warnings: list[str] = field(default_factory=list)


@dataclass
class WatchReader:
    """Events of one open watch stream, as they arrive."""

    events: asyncio.Queue[JSON | None]
    done: asyncio.Future[Any]

    async def next(self, timeout: float = 5.0) -> JSON:
        """The next event; AssertionError when none comes in time or the stream ended."""
        try:
            event = await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no watch event within {timeout} s") from None
        if event is None:
            raise AssertionError("the watch stream ended")
        return event

    async def until_closed(self, timeout: float = 10.0) -> list[JSON]:
        """Every remaining event, once the server has closed the stream."""
        out: list[JSON] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the watch stream stayed open for {timeout} s")
            try:
                event = await asyncio.wait_for(self.events.get(), remaining)
            except TimeoutError:
                continue
            if event is None:
                return out
            out.append(event)

    async def expect_quiet(self, seconds: float) -> None:
        """Assert that no event arrives for ``seconds`` (used with a short bookmark interval)."""
        try:
            event = await asyncio.wait_for(self.events.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected watch event {event}")


class ApiServer:
    """The API server under test and the clients pointed at it."""

    def __init__(
        self, store: Store, faults: Faults, server: HTTPServer, port: int, access: ApiAccess
    ) -> None:
        self.store = store
        self.faults = faults
        self.server = server
        self.port = port
        self.access = access
        self.token = access.token
        self.url = access.url
        self.ssl_context = access.ssl_context()
        self.http = AsyncHTTPClient(force_instance=True, max_clients=64)

    @property
    def auth_headers(self) -> dict[str, str]:
        return self.access.headers

    def kubectl_flags(self, home: Path) -> list[str]:
        """kubectl's flags to reach this server: ``--server``, the token and the CA file."""
        ca_file = home / "emulator-ca.crt"
        ca_file.write_bytes(self.access.ca_pem)
        return [
            "--server",
            self.url,
            "--token",
            self.token,
            "--certificate-authority",
            str(ca_file),
        ]

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        timeout: float = 30,
        auth: bool = True,
    ) -> Response:
        """One request (with the token unless ``auth=False``, or ``headers`` give another
        ``Authorization``); JSON bodies are encoded, JSON answers decoded."""
        data: bytes | None = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        all_headers = {
            "Content-Type": content_type,
            **(self.auth_headers if auth else {}),
            **(headers or {}),
        }
        if method in ("POST", "PUT", "PATCH") and data is None:
            data = b""
        req = HTTPRequest(
            self.url + path,
            method=method,
            body=data,
            headers=all_headers,
            request_timeout=timeout,
            allow_nonstandard_methods=True,
            ssl_options=self.ssl_context,
        )
        try:
            resp = await self.http.fetch(req, raise_error=False)
        except HTTPClientError as exc:  # pragma: no cover - raise_error=False prevents it
            raise AssertionError(str(exc)) from exc
        text = resp.body.decode() if resp.body else ""
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return Response(
            resp.code,
            parsed,
            dict(resp.headers.get_all()),
            resp.headers.get_list("Warning"),
        )

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> Response:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> Response:
        return await self.request("PUT", path, body, **kw)

    async def patch(self, path: str, body: Any, content_type: str, **kw: Any) -> Response:
        return await self.request("PATCH", path, body, content_type=content_type, **kw)

    async def delete(self, path: str, body: Any = None, **kw: Any) -> Response:
        return await self.request("DELETE", path, body, **kw)

    async def create(self, path: str, body: JSON) -> JSON:
        """POST that must succeed; the created object."""
        resp = await self.post(path, body)
        assert resp.code == 201, resp.body
        return dict(resp.body)

    def watch(
        self, path: str, timeout: float = 30, headers: dict[str, str] | None = None
    ) -> WatchReader:
        """Open a watch (``path`` carries the query); events arrive on the reader's queue."""
        events: asyncio.Queue[JSON | None] = asyncio.Queue()
        pending = b""

        def on_chunk(chunk: bytes) -> None:
            nonlocal pending
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    events.put_nowait(json.loads(line))

        req = HTTPRequest(
            self.url + path,
            streaming_callback=on_chunk,
            request_timeout=timeout,
            headers={**self.auth_headers, **(headers or {})},
            ssl_options=self.ssl_context,
        )
        done = asyncio.ensure_future(self.http.fetch(req, raise_error=False))

        def ended(future: asyncio.Future[Any]) -> None:
            if not future.cancelled():
                future.exception()  # a stream cut at teardown is not an error of the test
            events.put_nowait(None)

        done.add_done_callback(ended)
        return WatchReader(events, done)

    async def wait_watchers(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` watches are open in the store (a watch request has arrived)."""
        await wait_for(lambda: len(self.store.open_watchers()) >= count, timeout, "open watches")

    def kubeconfig(self, directory: Path) -> Path:
        return write_kubeconfig(
            directory / "kubeconfig", self.url, token=self.token, ca_pem=self.access.ca_pem
        )

    async def kubectl(
        self, home: Path, *args: str, stdin: str | None = None
    ) -> tuple[int, str, str]:
        """Run kubectl against this server; (exit code, stdout, stderr).

        ``home`` holds kubectl's discovery cache, so runs never share one.
        """
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL,
            *self.kubectl_flags(home),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"HOME": str(home), "KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin"},
        )
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), 60
        )
        return proc.returncode or 0, out.decode(), err.decode()

    async def close(self) -> None:
        self.store.close_watchers()
        self.server.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.close_all_connections(), 5)
        self.http.close()


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_for_async(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 5.0, what: str = "condition"
) -> Any:
    """``wait_for`` for a coroutine predicate (e.g. an HTTP GET)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def node_object(name: str, cpu: str = "8", memory: str = "32Gi", gpus: int = 0) -> JSON:
    """A Ready node as a kubelet registers it."""
    capacity = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "node-role.kubernetes.io/worker": ""},
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.7"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "b",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.33.2",
                "machineID": "m",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12",
                "systemUUID": "u",
            },
        },
    }


def pod_body(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> JSON:
    """A minimal pod; ``spec`` entries override the one-container default."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels if labels is not None else {"app": "demo"}},
        "spec": {"containers": [{"name": "main", "image": "python:3.11"}], **spec},
    }


def configmap_body(name: str, **labels: str) -> JSON:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def job_body(name: str, **spec: Any) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "work", "image": "busybox:1.36", "command": ["true"]}],
                }
            },
            **spec,
        },
    }


def names(items: list[JSON]) -> list[str]:
    return [i["metadata"]["name"] for i in items]


def query(**params: str) -> str:
    """A query string (values URL-encoded)."""
    return "?" + urllib.parse.urlencode(params)


def nulls(obj: Any, path: str = "", allowed: frozenset[str] = frozenset()) -> list[str]:
    """Paths of null values (the real server omits unset fields), except ``allowed`` keys."""
    if isinstance(obj, dict):
        found = []
        for key, value in obj.items():
            if value is None and key not in allowed:
                found.append(f"{path}.{key}")
            found.extend(nulls(value, f"{path}.{key}", allowed))
        return found
    if isinstance(obj, list):
        return [n for i, v in enumerate(obj) for n in nulls(v, f"{path}[{i}]", allowed)]
    return []


async def start_api(*, validate: bool = True, history_size: int = 20000) -> ApiServer:
    """Start the API on the running loop with two namespaces and two nodes."""
    store = Store(history_size=history_size)
    faults = Faults()
    token = new_token()
    certificate = make_serving_certificate(serving_hosts("127.0.0.1"))
    app = make_app(store, faults, token=token, validate=validate)
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app, ssl_options=certificate.server_context())
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    access = ApiAccess(f"https://127.0.0.1:{port}", token, certificate.ca_pem)
    for ns in ("default", "kube-system"):
        store.create(
            NAMESPACES,
            {
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
        )
        store.create(SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": ns}})
    store.create(NODES, node_object("node-a"))
    store.create(NODES, node_object("node-b", gpus=4))
    return ApiServer(store, faults, server, port, access)


@contextlib.asynccontextmanager
async def running_api(
    *, validate: bool = True, history_size: int = 20000
) -> AsyncIterator[ApiServer]:
    """The API server on the test's event loop, closed (watches included) on exit."""
    server = await start_api(validate=validate, history_size=history_size)
    try:
        yield server
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def kube_client(api: ApiServer, directory: Path) -> AsyncIterator[Any]:
    """A kubernetes_asyncio ``ApiClient`` configured from a kubeconfig for ``api``."""
    from kubernetes_asyncio import client, config

    cfg = client.Configuration()
    await config.load_kube_config(
        config_file=str(api.kubeconfig(directory)), client_configuration=cfg
    )
    async with client.ApiClient(configuration=cfg) as api_client:
        yield api_client


@contextlib.contextmanager
def sync_client(api: ApiServer, directory: Path) -> Iterator[Any]:
    """An ``ApiClient`` of the sync ``kubernetes`` package (call it via ``asyncio.to_thread``)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(api.kubeconfig(directory)), client_configuration=cfg)
    api_client = client.ApiClient(configuration=cfg)
    try:
        yield api_client
    finally:
        api_client.close()
