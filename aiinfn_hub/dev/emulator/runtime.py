"""Run the emulator: store + API server + controllers, on a dedicated thread or in the foreground.

Tests run it in-process on port 0 on its own thread and event loop, so that a JupyterHub under
test (whose shutdown cancels every task on *its* loop) cannot cancel the cluster it talks to.

Its API listens on a loopback address only (unless ``insecure_listen``), speaks HTTPS with a
certificate of a CA made at each start (``ca_file``), and answers only requests with the
bearer token made at each start (``token``); the kubeconfig it writes carries both, and
``access`` gives them to raw HTTP clients. The Python methods (``call``, ``objects``...)
need neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from .access import ApiAccess, is_loopback_host, new_token
from .api.app import TokenCheckedApplication, make_app
from .api.faults import Faults
from .cluster import ClusterSpec, initial_objects
from .controllers import ControllerOptions, Controllers
from .controllers.container_access import KubeletContainers
from .controllers.pod_network import PodNetworkMode
from .kubeconfig import write_kubeconfig
from .resources import RESOURCE_TYPES, by_kind
from .store import Store
from .tls import make_serving_certificate, serving_hosts

log = logging.getLogger(__name__)
T = TypeVar("T")


class NonLoopbackHostError(ValueError):
    """Listening on an address other machines may reach was asked without ``insecure_listen``."""


class Emulator:
    """A running emulated cluster.

    ``start()`` runs it on a background thread (tests); ``serve()`` runs it on the caller's loop
    (the CLI). ``call(fn)`` runs a function on the emulator's loop and returns its result, the
    only safe way for other threads to touch ``store``, ``faults`` or ``controllers``.

    Containers are simulated unless in process mode: ``run_processes`` runs every pod's
    command as a local process, ``run_annotated_processes`` only those of pods annotated
    ``emulator.aiinfn.dev/outcome: process`` (tests mixing both kinds). ``host`` must be a
    loopback address unless ``insecure_listen`` (then anyone holding the token, which a
    process-mode emulator turns into a shell on this machine, may use it from afar).

    ``pod_network`` is the network of the pods: ``loopback`` (default) gives each a
    ``127.N.x.y`` IP on this machine's network, which its processes share (a server must bind
    its own pod IP); ``netns`` gives each process-mode pod a network namespace of its own on a
    private bridge (Linux, root, ``ip``: a failure to start otherwise), so ``localhost`` is
    the pod's and any port is free, but the pod no longer reaches this machine's 127.0.0.1;
    ``auto`` is ``netns`` where possible, else ``loopback`` with a log line saying why (see
    ``controllers.pod_network``).
    """

    def __init__(
        self,
        cluster: ClusterSpec | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | Path | None = None,
        run_processes: bool = False,
        run_annotated_processes: bool = False,
        insecure_listen: bool = False,
        validate: bool = True,
        startup_delay: float = 0.0,
        history_size: int = 20000,
        pod_network: PodNetworkMode = "loopback",
    ) -> None:
        if not insecure_listen and not is_loopback_host(host):
            raise NonLoopbackHostError(
                f"refusing to listen on {host!r}, which is not a loopback address: the API "
                "creates pods (local processes in process mode); pass insecure_listen to "
                "allow it"
            )
        self.cluster = cluster or ClusterSpec()
        self.host = host
        self.port = port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="aiinfn-emulator-")
            state_dir = self._tmp.name
        self.state_dir = Path(state_dir)
        self.store = Store(history_size=history_size)
        self.faults = Faults()
        self.controllers = Controllers(
            self.store,
            ControllerOptions(
                state_dir=self.state_dir,
                run_processes=run_processes,
                run_annotated_processes=run_annotated_processes,
                startup_delay=startup_delay,
            ),
        )
        self.controllers.kubelet.use_pod_network(pod_network)
        self._validate = validate
        self._server: HTTPServer | None = None
        self._app: TokenCheckedApplication | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._access: ApiAccess | None = None

    # -- addresses and credentials ---------------------------------------------------------
    @property
    def url(self) -> str:
        """The API's URL for clients on this machine (loopback when listening everywhere)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}"

    @property
    def pod_gateway(self) -> str | None:
        """Where pods reach this machine once started: the bridge's ``100.N.0.1`` when they
        have network namespaces (this machine's 127.0.0.1 is not theirs, so what they call
        must listen there too), None when they share this machine's network (loopback)."""
        return self.controllers.kubelet.network.gateway

    @property
    def access(self) -> ApiAccess:
        """URL, token and CA of this start, for raw HTTP clients (kubeconfig users need not)."""
        if self._access is None:
            raise RuntimeError("the emulator has no token before it starts")
        return self._access

    @property
    def token(self) -> str:
        """The bearer token of this start of the emulator (every request must send it)."""
        return self.access.token

    @property
    def auth_headers(self) -> dict[str, str]:
        """The header a raw HTTP client adds to reach the API: ``Authorization: Bearer ...``."""
        return self.access.headers

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) to trust, e.g. ``requests.get(..., verify=ca_file)``."""
        return self.state_dir / "ca.crt"

    def write_kubeconfig(self, path: str | Path | None = None, namespace: str = "default") -> Path:
        """Write a kubeconfig for this emulator, with its token and CA (default:
        ``<state_dir>/kubeconfig``); only valid once started."""
        access = self.access
        return write_kubeconfig(
            path or self.state_dir / "kubeconfig",
            access.url,
            namespace,
            token=access.token,
            ca_pem=access.ca_pem,
        )

    # -- foreground ------------------------------------------------------------------------
    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Start on the running loop and serve until ``shutdown()``."""
        await self._startup()
        if ready is not None:
            ready()
        assert self._stopped is not None
        await self._stopped.wait()
        await self._teardown()

    async def _startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        # a new token and CA at each start: an old kubeconfig stops working
        token = new_token()
        certificate = make_serving_certificate(serving_hosts(self.host))
        app = self._app = make_app(
            self.store,
            self.faults,
            token=token,
            validate=self._validate,
            runtime=KubeletContainers(self.controllers.kubelet, self.store),
        )
        sockets = bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        self._access = ApiAccess(self.url, token, certificate.ca_pem)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_bytes(certificate.ca_pem)
        self._server = HTTPServer(
            app, ssl_options=certificate.server_context(), idle_connection_timeout=3600
        )
        self._server.add_sockets(sockets)
        self.controllers.start()
        await self._create_initial_objects()
        log.info("Kubernetes API emulator listening on %s", self.url)

    async def _create_initial_objects(self) -> None:
        """Create the cluster file's objects through the API, so admission applies to them."""
        # tornado's own client: JupyterHub configures curl as the default where pycurl is
        # installed (the z2jh hub image), and curl takes no ssl_options
        client = SimpleAsyncHTTPClient(force_instance=True)
        access = self.access
        context = access.ssl_context()
        try:
            for obj in initial_objects(self.cluster):
                # a kind of a CRD given at start too (served by the store's kinds)
                group = str(obj.get("apiVersion", "")).rpartition("/")[0]
                rt = self.store.kinds.by_kind(group, obj["kind"]) or by_kind(obj["kind"])
                version = obj.get("apiVersion", rt.api_version()).split("/")[-1]
                prefix = f"/apis/{rt.group}/{version}" if rt.group else f"/api/{version}"
                ns = obj.get("metadata", {}).get("namespace") or "default"
                scope = f"/namespaces/{ns}" if rt.namespaced else ""
                collection = f"{self.url}{prefix}{scope}/{rt.plural}"
                created = await _send(client, "POST", collection, obj, access.headers, context)
                if obj.get("status") and rt.subresources and "status" in rt.subresources:
                    name = created["metadata"]["name"]
                    status_obj = {**created, "status": obj["status"]}
                    await _send(
                        client,
                        "PUT",
                        f"{collection}/{name}/status",
                        status_obj,
                        access.headers,
                        context,
                    )
        finally:
            client.close()

    def shutdown(self) -> None:
        """Ask a serving emulator to stop (thread-safe)."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def _teardown(self) -> None:
        self.store.close_watchers()
        await self.controllers.stop()
        if self._app is not None:
            # after the controllers: exec sessions end with their containers' processes
            await self._app.open_streams.close_all()
        if self._server is not None:
            self._server.stop()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.close_all_connections(), 2)

    # -- background thread -----------------------------------------------------------------
    def start(self, timeout: float = 30) -> Emulator:
        """Run on a new thread with its own loop; return once it accepts requests."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.serve(ready=started.set))
            except BaseException as exc:  # report start-up failures to the caller
                failure.append(exc)
                started.set()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError(f"the Kubernetes emulator did not start within {timeout} s")
        if failure:
            raise RuntimeError("the Kubernetes emulator failed to start") from failure[0]
        return self

    def stop(self, timeout: float = 15) -> None:
        """Stop the background emulator: close watches, end local processes, free the port."""
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[[], T], timeout: float = 30) -> T:
        """Run ``fn()`` on the emulator's loop and return its result (from any thread)."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def run(self, coro_fn: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        """Run a coroutine function on the emulator's loop and return its result."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")

        async def wrapper() -> T:
            return await coro_fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """A snapshot of the stored objects of one kind (thread-safe, for tests)."""
        rt = by_kind(kind)
        return self.call(lambda: json.loads(json.dumps(self.store.list(rt, namespace))))


async def _send(
    client: AsyncHTTPClient,
    method: str,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    context: ssl.SSLContext,
) -> Any:
    request = HTTPRequest(
        url,
        method=method,
        body=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
        ssl_options=context,
    )
    try:
        response = await client.fetch(request)
    except HTTPClientError as exc:
        detail = exc.response.body.decode() if exc.response is not None else str(exc)
        raise RuntimeError(f"{method} {url} failed: {detail}") from exc
    return json.loads(response.body)


def served_kinds() -> Iterator[str]:
    """The kinds the emulator serves (for ``--help`` texts and docs)."""
    return (rt.kind for rt in RESOURCE_TYPES)
