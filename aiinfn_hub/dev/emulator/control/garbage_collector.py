"""The garbage collector: dependents go when their owners go (ownerReferences)."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from ..deletion import FOREGROUND, delete_object, remove_if_finalized
from ..errors import ApiError
from ..resources import RESOURCE_TYPES, ResourceType
from ..store import Store, WatchEvent

log = logging.getLogger(__name__)
JSON = dict[str, Any]
Ref = tuple[ResourceType, str, str]  # resource, namespace, name
ORPHAN_GRACE_SECONDS = 1.0


class GarbageCollector:
    """Keeps an index owner uid -> dependents, fed by store events."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._live: set[str] = set()
        self._dependents: dict[str, set[Ref]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        for rt in RESOURCE_TYPES:
            for obj in self.store.iter(rt):
                self._index(rt, obj)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def on_event(self, event: WatchEvent) -> None:
        meta = event.obj["metadata"]
        uid = meta.get("uid", "")
        if event.type == "DELETED":
            self._live.discard(uid)
            self._unindex(event.rt, event.obj)
            dependents = self._dependents.pop(uid, set())
            if dependents:
                self._later(self._collect(dependents))
            for ref in meta.get("ownerReferences") or []:
                owner = ref.get("uid", "")
                if owner in self._live:
                    self._later(self._finish_foreground(owner))
            return
        if event.old is not None:
            self._unindex(event.rt, event.old)
        self._index(event.rt, event.obj)
        if "deletionTimestamp" in meta and FOREGROUND in (meta.get("finalizers") or []):
            self._later(self._foreground(event.rt, event.obj))
        if event.type == "ADDED":
            missing = [
                r["uid"]
                for r in meta.get("ownerReferences") or []
                if r.get("uid") not in self._live
            ]
            if missing:
                self._later(self._collect_orphan(event.rt, event.obj))

    def _later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _index(self, rt: ResourceType, obj: JSON) -> None:
        meta = obj["metadata"]
        self._live.add(meta.get("uid", ""))
        ref = (rt, meta.get("namespace", ""), meta["name"])
        for owner in meta.get("ownerReferences") or []:
            self._dependents.setdefault(owner.get("uid", ""), set()).add(ref)

    def _unindex(self, rt: ResourceType, obj: JSON) -> None:
        meta = obj["metadata"]
        ref = (rt, meta.get("namespace", ""), meta["name"])
        for owner in meta.get("ownerReferences") or []:
            deps = self._dependents.get(owner.get("uid", ""))
            if deps is not None:
                deps.discard(ref)

    async def _collect(self, refs: set[Ref]) -> None:
        for rt, namespace, name in sorted(refs, key=lambda r: (r[0].plural, r[1], r[2])):
            obj = self.store.get(rt, namespace, name)
            if obj is None or "deletionTimestamp" in obj["metadata"]:
                continue
            owners = obj["metadata"].get("ownerReferences") or []
            if any(o.get("uid") in self._live for o in owners):
                continue  # another owner still holds it
            try:
                delete_object(self.store, rt, namespace, name, propagation="Background")
            except ApiError:
                log.debug("dependent %s/%s already gone", namespace, name)

    async def _collect_orphan(self, rt: ResourceType, obj: JSON) -> None:
        """A dependent created for an owner that does not exist is collected after a while."""
        await asyncio.sleep(ORPHAN_GRACE_SECONDS)
        meta = obj["metadata"]
        current = self.store.get(rt, meta.get("namespace"), meta["name"])
        if current is None or current["metadata"].get("uid") != meta.get("uid"):
            return
        owners = current["metadata"].get("ownerReferences") or []
        if owners and not any(o.get("uid") in self._live for o in owners):
            await self._collect({(rt, meta.get("namespace", ""), meta["name"])})

    async def _foreground(self, rt: ResourceType, owner: JSON) -> None:
        uid = owner["metadata"]["uid"]
        for dep_rt, namespace, name in list(self._dependents.get(uid, set())):
            obj = self.store.get(dep_rt, namespace, name)
            if obj is None or "deletionTimestamp" in obj["metadata"]:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                delete_object(self.store, dep_rt, namespace, name, propagation="Foreground")
            else:
                delete_object(self.store, dep_rt, namespace, name, propagation="Background")
        await self._finish_foreground(uid)

    async def _finish_foreground(self, uid: str) -> None:
        """Drop the foregroundDeletion finalizer once no blocking dependent is left."""
        if any(
            self.store.get(rt, ns, name) is not None
            for rt, ns, name in self._dependents.get(uid, set())
        ):
            return
        for rt in RESOURCE_TYPES:
            for obj in self.store.iter(rt):
                meta = obj["metadata"]
                if meta.get("uid") != uid:
                    continue
                if FOREGROUND not in (meta.get("finalizers") or []):
                    return
                new = copy.deepcopy(obj)
                new["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != FOREGROUND]
                if not new["metadata"]["finalizers"]:
                    del new["metadata"]["finalizers"]
                updated = self.store.update(rt, new)
                remove_if_finalized(self.store, rt, updated)
                return
