"""In-memory object store with one cluster-wide resourceVersion, like etcd behind kube-apiserver.

Objects are plain JSON dicts. A stored dict is never mutated in place: every write stores a new
dict, so ``get``/``list`` hand out the stored objects without copying and watch history can keep
references. Callers that want to change an object ``copy.deepcopy`` it first.

Everything here runs on the emulator's own event loop (one thread), so there are no locks; code
on other threads goes through ``Emulator.call``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ApiError
from .kinds import ServedKinds
from .resources import ResourceType

JSON = dict[str, Any]
# generateName suffixes use the same alphabet as apimachinery (no vowels, no 0/1/3)
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    """The current time as the API server writes timestamps (second precision, UTC, ``Z``)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339_micro() -> str:
    """MicroTime, used by ``eventTime`` and lease fields."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class WatchEvent:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``old`` is the previous object."""

    type: str
    rt: ResourceType
    obj: JSON
    old: JSON | None
    rv: int


@dataclass
class Watcher:
    """A subscription to changes of one resource (optionally one namespace)."""

    rt: ResourceType
    namespace: str | None
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)
    closed: bool = False
    # set by fault injection: how the stream should end ("gone", "error" or "close")
    break_mode: str = "close"

    def close(self) -> None:
        """Wake the reader with ``None`` so it ends the stream."""
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


Listener = Callable[[WatchEvent], None]


class Store:
    """All objects of the emulated cluster, the resourceVersion counter, the watch history,
    and the kinds it serves (``kinds``: the built-ins and those of its established CRDs)."""

    def __init__(self, history_size: int = 20000, kinds: ServedKinds | None = None) -> None:
        self.kinds = kinds or ServedKinds()
        self._objects: dict[tuple[str, str], dict[tuple[str, str], JSON]] = collections.defaultdict(
            dict
        )
        self._rv = 1
        self._history: collections.deque[WatchEvent] = collections.deque(maxlen=history_size)
        # highest resourceVersion whose event fell out of the history: watches from older
        # versions cannot be served (410 Gone)
        self._compacted_rv = 1
        self._watchers: list[Watcher] = []
        self._listeners: list[Listener] = []
        # container logs kept by the kubelet: (namespace, pod, container) -> the text itself, or
        # the file a local process writes its output to; the ``log`` subresource reads them
        self.logs: dict[tuple[str, str, str], str | Path] = {}

    # -- reading ---------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        """The current cluster-wide resourceVersion (what a list returns)."""
        return self._rv

    @property
    def oldest_watchable_rv(self) -> int:
        return self._compacted_rv

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> JSON | None:
        return self._objects[rt.key].get((namespace or "", name))

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[JSON]:
        """Objects of one kind, in one namespace or all, sorted like etcd keys (ns, name)."""
        items = self._objects[rt.key]
        keys = sorted(k for k in items if namespace is None or k[0] == namespace)
        return [items[k] for k in keys]

    def iter(self, rt: ResourceType) -> Iterator[JSON]:
        """All objects of one kind in no particular order (cheap, for controllers)."""
        return iter(list(self._objects[rt.key].values()))

    def count(self, rt: ResourceType) -> int:
        return len(self._objects[rt.key])

    # -- writing ---------------------------------------------------------------------------
    def create(self, rt: ResourceType, obj: JSON) -> JSON:
        """Store a new object; fills uid, creationTimestamp, resourceVersion, generation.

        ``obj`` becomes owned by the store; a uid already in it is kept (the API layer clears
        clients' uids and may assign one first, as Jobs need theirs for defaulting). A missing
        ``metadata.name`` is made from ``metadata.generateName`` like the real API server does.
        """
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(rt, meta.get("namespace", ""), meta["generateName"])
        name = meta.get("name", "")
        ns = meta.get("namespace", "") if rt.namespaced else ""
        if not rt.namespaced:
            meta.pop("namespace", None)
        if (ns, name) in self._objects[rt.key]:
            raise ApiError.already_exists(rt, name)
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        if rt.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        obj.setdefault("apiVersion", rt.api_version())
        obj.setdefault("kind", rt.kind)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._objects[rt.key][(ns, name)] = obj
        self._emit(WatchEvent("ADDED", rt, obj, None, self._rv))
        return obj

    def update(self, rt: ResourceType, obj: JSON, *, expected_rv: str | None = None) -> JSON:
        """Replace an existing object; 409 Conflict when ``expected_rv`` is stale.

        uid and creationTimestamp are kept from the stored object; generation is bumped when
        anything outside metadata and status changed. A write that changes nothing keeps the
        resourceVersion and sends no event, as the real API server does.
        """
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        ns = meta.get("namespace", "") if rt.namespaced else ""
        old = self._objects[rt.key].get((ns, name))
        if old is None:
            raise ApiError.not_found(rt, name)
        old_meta = old["metadata"]
        if expected_rv and expected_rv != old_meta["resourceVersion"]:
            raise ApiError.conflict(rt, name)
        for keep in ("uid", "creationTimestamp"):
            meta[keep] = old_meta[keep]
        if "deletionTimestamp" in old_meta:
            # once set, deletion cannot be undone by an update
            meta["deletionTimestamp"] = old_meta["deletionTimestamp"]
            if "deletionGracePeriodSeconds" in old_meta:
                meta.setdefault(
                    "deletionGracePeriodSeconds", old_meta["deletionGracePeriodSeconds"]
                )
        if rt.has_generation:
            meta["generation"] = old_meta.get("generation", 1)
            if _spec_part(obj) != _spec_part(old):
                meta["generation"] += 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        obj.setdefault("apiVersion", old.get("apiVersion", rt.api_version()))
        obj.setdefault("kind", rt.kind)
        if obj == old:
            return old
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._objects[rt.key][(ns, name)] = obj
        self._emit(WatchEvent("MODIFIED", rt, obj, old, self._rv))
        return obj

    def delete(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        """Remove an object now; the DELETED event carries it with a new resourceVersion."""
        key = (namespace or "", name)
        old = self._objects[rt.key].pop(key, None)
        if old is None:
            raise ApiError.not_found(rt, name)
        self._rv += 1
        final = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self._rv)}}
        self._emit(WatchEvent("DELETED", rt, final, old, self._rv))
        return final

    # -- watching --------------------------------------------------------------------------
    def watch(self, rt: ResourceType, namespace: str | None, since_rv: int | None) -> Watcher:
        """Subscribe to changes after ``since_rv`` (None: only future changes).

        Events already in the history after ``since_rv`` are queued at once; 410 Gone when
        they have been compacted away.
        """
        watcher = Watcher(rt, namespace)
        if since_rv is not None:
            if since_rv < self._compacted_rv:
                raise ApiError.gone(since_rv, self._compacted_rv)
            for event in self._history:
                if event.rv > since_rv and self._matches(watcher, event):
                    watcher.queue.put_nowait(event)
        self._watchers.append(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        watcher.close()
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def open_watchers(self, rt: ResourceType | None = None) -> tuple[Watcher, ...]:
        """The open watches (all, or of one resource): for fault injection and tests."""
        return tuple(w for w in self._watchers if rt is None or w.rt.key == rt.key)

    def close_watchers(self, rt: ResourceType | None = None) -> None:
        """End open watch streams (all, or of one resource), e.g. at shutdown."""
        for watcher in list(self._watchers):
            if rt is None or watcher.rt.key == rt.key:
                self.unwatch(watcher)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` synchronously after every change (controllers use this)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- internals -------------------------------------------------------------------------
    def _emit(self, event: WatchEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        for watcher in self._watchers:
            if self._matches(watcher, event):
                watcher.queue.put_nowait(event)
        for listener in list(self._listeners):
            listener(event)

    @staticmethod
    def _matches(watcher: Watcher, event: WatchEvent) -> bool:
        if watcher.rt.key != event.rt.key:
            return False
        if watcher.namespace is None:
            return True
        return bool(event.obj["metadata"].get("namespace") == watcher.namespace)

    def _generate_name(self, rt: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(16):
            name = prefix + "".join(random.choices(_NAME_ALPHABET, k=5))
            if (namespace if rt.namespaced else "", name) not in self._objects[rt.key]:
                return name
        raise ApiError(500, "InternalError", f"could not generate a unique name for {prefix!r}")


def _spec_part(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
