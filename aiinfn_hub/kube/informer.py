"""Informers: an in-memory copy of a resource kept current by list + watch.

Like kubespawner's reflectors, they read raw JSON (no typed models, which are slow for thousands
of pods), relist when the server answers 410 Gone, restart the watch when it times out, and
back off on errors while keeping the last good cache. ``version`` increases on every change of
what the cache keeps (a change of a field ``keep`` drops is no change for readers) so
readers can cache what they derive from the contents, and listeners (:class:`CacheListener`)
follow each change as it is applied, so they can keep what they derive up to date without
reading the whole cache again. Lists are read in pages, as client-go's reflectors do, so a relist
of thousands of pods never holds them all as whole objects at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from kubernetes_asyncio import client

from .lean import lean_node, lean_pod

log = logging.getLogger(__name__)
JSON = dict[str, Any]
Lister = Callable[..., Awaitable[Any]]
WATCH_TIMEOUT_SECONDS = 300
MAX_BACKOFF_SECONDS = 30.0
# objects per list page. Each page is held whole until it is trimmed (``keep``), and the
# allocator keeps much of that peak resident afterwards (the trimmed objects are scattered
# through it): for 2,000 typical pods, pages of 500 (client-go's size) left 3x the memory
# pages of 50 do, pages of 100 1.2x; a relist of 5,000 pods is then 50 requests
LIST_PAGE_SIZE = 100


class CacheListener(Protocol):
    """Follows an informer's cache: called on the event loop, right after each change."""

    def relisted(self, cache: Mapping[str, JSON]) -> None:
        """The cache was replaced as a whole (first list, relist after 410 or an error)."""

    def changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        """One object was added (``old`` None), modified, or deleted (``new`` None); both as
        the cache keeps them (after ``keep``)."""


class ResourceExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): relist."""


def _key(obj: JSON) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _checked(response: Any) -> Any:
    """Raw responses carry no status check: turn an error answer into ``ApiException``."""
    if not 200 <= response.status <= 299:
        response.release()
        if response.status == 410:
            raise ResourceExpired("resource version too old")
        raise client.ApiException(status=response.status, reason=response.reason)
    return response


class Informer:
    """Cache of one resource, from ``lister`` such as ``CoreV1Api.list_node`` (all namespaces),
    or ``functools.partial(CoreV1Api.list_namespaced_pod, namespace)`` (one)."""

    def __init__(
        self,
        name: str,
        lister: Lister,
        *,
        label_selector: str = "",
        keep: Callable[[JSON], JSON] | None = None,
        on_object: Callable[[JSON], None] | None = None,
        page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        self.name = name
        self._lister = lister
        self._label_selector = label_selector
        # what of each object is cached (default: all of it); ``metadata.name`` and
        # ``metadata.namespace`` must stay, they are the cache key
        self._keep = keep or (lambda obj: obj)
        # called with each object as it comes, whole (before ``keep``): every object of a
        # (re)list, then each ADDED or MODIFIED one; it must not block (schedule work instead),
        # and what it raises is logged, never stops the informer
        self._on_object = on_object
        self._page_size = page_size
        self.cache: dict[str, JSON] = {}
        self.version = 0
        self.resource_version = ""
        self.ready = asyncio.Event()
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[CacheListener] = []

    def subscribe(self, listener: CacheListener) -> None:
        """Call ``listener`` on every change from now on; it is handed the current cache at
        once (``relisted``), so it starts from what the cache holds."""
        self._listeners.append(listener)
        listener.relisted(self.cache)

    def unsubscribe(self, listener: CacheListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def objects(self) -> list[JSON]:
        return list(self.cache.values())

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._list()
                backoff = 0.1
                while True:
                    await self._watch()
            except asyncio.CancelledError:
                raise
            except ResourceExpired:
                log.info("%s: watch expired (410), relisting", self.name)
                continue
            except client.ApiException as exc:
                if exc.status == 410:
                    log.info("%s: resource version expired (410), relisting", self.name)
                    continue
                self.failures += 1
                log.warning(
                    "%s: list/watch failed with HTTP %s (%s), retrying in %.1f s",
                    self.name,
                    exc.status,
                    exc.reason,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as exc:  # keep the last good cache and retry
                self.failures += 1
                log.warning(
                    "%s: list/watch failed (%s), retrying in %.1f s", self.name, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _list(self) -> None:
        """Read the whole list, page by page, then replace the cache with it at once.

        Each page's objects are trimmed (``keep``) before the next page is read; an expired
        continue token is a 410 like a watch's, and the list starts again.
        """
        cache: dict[str, JSON] = {}
        token = ""
        while True:
            pages: dict[str, Any] = {"limit": self._page_size}
            if token:
                pages["_continue"] = token
            response = await self._lister(
                label_selector=self._label_selector, _preload_content=False, **pages
            )
            body = json.loads(await _checked(response).read())
            for item in body.get("items") or []:
                self._notify(item)
                cache[_key(item)] = self._keep(item)
            meta = body.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                break
            del body  # the next page is read without this one's whole objects
        self.cache = cache
        self.resource_version = meta.get("resourceVersion", "")
        self.version += 1
        for listener in list(self._listeners):
            self._tell(listener.relisted, self.cache)
        self.ready.set()

    async def _watch(self) -> None:
        response = await self._lister(
            label_selector=self._label_selector,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            _preload_content=False,
            _request_timeout=WATCH_TIMEOUT_SECONDS + 30,
        )
        async with _checked(response):
            async for line in response.content:
                if line.strip():
                    self._apply(json.loads(line))

    def _apply(self, event: JSON) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise ResourceExpired(obj.get("message", ""))
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if kind == "BOOKMARK":
            return
        key = _key(obj)
        new: JSON | None = None
        if kind == "DELETED":
            old = self.cache.pop(key, None)
        elif kind in ("ADDED", "MODIFIED"):
            self._notify(obj)
            old = self.cache.get(key)
            new = self._keep(obj)
            if new == old:  # a change of nothing this cache keeps (a heartbeat, a status)
                return
            self.cache[key] = new
        else:
            return
        self.version += 1
        for listener in list(self._listeners):
            self._tell(listener.changed, key, old, new)

    def _tell(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception:  # a listener's bug must not stop the cache
            log.exception("%s: a cache listener failed", self.name)

    def _notify(self, obj: JSON) -> None:
        if self._on_object is None:
            return
        try:
            self._on_object(obj)
        except Exception:  # the caller's bug must not stop the cache
            log.exception("%s: the object callback failed", self.name)


class ClusterView:
    """Nodes and pods of the whole cluster, shared by every spawner of one hub process."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        core = client.CoreV1Api(api_client)
        # only the fields the platform reads (see .lean): no environment values or commands
        # of other users' pods in the hub's memory
        self.nodes = Informer("nodes", core.list_node, keep=lean_node)
        self.pods = Informer("pods", core.list_pod_for_all_namespaces, keep=lean_pod)

    def start(self) -> None:
        self.nodes.start()
        self.pods.start()

    async def wait_ready(self, timeout: float = 30) -> None:
        await asyncio.wait_for(
            asyncio.gather(self.nodes.ready.wait(), self.pods.ready.wait()), timeout
        )

    async def stop(self) -> None:
        await self.nodes.stop()
        await self.pods.stop()
