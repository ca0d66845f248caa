"""Fixtures shared by the whole suite: an in-process emulated cluster and clients pointed at it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, load_cluster_file

if TYPE_CHECKING:
    from aiinfn_hub.dev.emulator.access import ApiAccess
    from aiinfn_hub.dev.emulator.runtime import Emulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def example_cluster() -> ClusterSpec:
    """The paper's four servers (examples/cluster.yaml)."""
    return load_cluster_file(EXAMPLES / "cluster.yaml")


@pytest.fixture
def emulator(example_cluster: ClusterSpec, tmp_path: Path) -> Iterator[Emulator]:
    """The example cluster, served on 127.0.0.1 on its own thread (simulated containers)."""
    from aiinfn_hub.dev.emulator.runtime import Emulator

    emu = Emulator(example_cluster, state_dir=tmp_path / "emulator").start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
async def kube_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    """Point kubespawner and kubernetes_asyncio at ``emulator`` the standard way (KUBECONFIG).

    kubernetes_asyncio reads the default kubeconfig location at import, and kubespawner caches
    the loaded config, its clients and its reflectors at class level: reset all of them so each
    test talks to its own emulator.
    """
    import kubernetes_asyncio.config.kube_config as kube_config
    from kubespawner import KubeSpawner, clients

    path = emulator.write_kubeconfig()
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    clients.load_config.cache_clear()
    clients._client_cache.clear()
    KubeSpawner.reflectors.clear()
    yield path
    for reflector in list(KubeSpawner.reflectors.values()):
        await reflector.stop()
    KubeSpawner.reflectors.clear()
    for client in list(clients._client_cache.values()):
        await client.api_client.close()
    clients._client_cache.clear()
    clients.load_config.cache_clear()


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
    ) -> tuple[int, Any, dict[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
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


@pytest.fixture
def raw(emulator: Emulator) -> RawClient:
    return RawClient(emulator.access)


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
