"""The garbage collector: deletes dependents whose owners are gone, and runs foreground deletion.

It keeps a graph from the store's change events: every object's uid, and for every owner uid
the objects whose ``ownerReferences`` name it. Then, as the real collector does:

- an owner removed: each dependent with no other live owner is deleted (Background); one that
  still has a live owner only loses the dangling reference;
- an owner marked for deletion with the ``foregroundDeletion`` finalizer: its dependents are
  deleted, and once none with ``blockOwnerDeletion`` is left, the finalizer is removed and the
  owner goes away;
- a dependent created pointing at a uid that does not exist is collected after a short delay
  (the owner may simply not have been seen yet).

Orphan propagation (dropping the references) happens in the API's delete call, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections import defaultdict
from dataclasses import dataclass

from ..deletion import FOREGROUND, delete_object, remove_if_finalized
from ..errors import ApiError
from ..resources import ResourceType
from ..store import JSON, Store, WatchEvent

log = logging.getLogger(__name__)
DANGLING_CHECK_DELAY = 0.5


@dataclass(frozen=True)
class ObjectId:
    """Where an object lives: resource, namespace (empty when cluster-scoped) and name."""

    rt: ResourceType
    namespace: str
    name: str


def _object_id(rt: ResourceType, obj: JSON) -> ObjectId:
    return ObjectId(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _owner_uids(obj: JSON) -> set[str]:
    return {ref["uid"] for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid")}


def _waiting_for_dependents(obj: JSON) -> bool:
    meta = obj["metadata"]
    return "deletionTimestamp" in meta and FOREGROUND in (meta.get("finalizers") or [])


class GarbageCollector:
    """Cascading deletion driven by ownerReferences."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._objects: dict[str, ObjectId] = {}
        self._dependents: dict[str, set[str]] = defaultdict(set)
        self._owners_of: dict[str, set[str]] = {}
        self._queue: asyncio.Queue[tuple[str, str]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    def start(self) -> None:
        self._queue = asyncio.Queue()
        for rt in self._store.kinds.all():
            for obj in self._store.iter(rt):
                self._changed(rt, obj)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="garbage-collector")

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- graph upkeep (synchronous) --------------------------------------------------------
    def observe(self, event: WatchEvent) -> None:
        if event.rt.kind == "Event":
            return
        if event.type == "DELETED":
            self._deleted(event.obj)
        else:
            self._changed(event.rt, event.obj)

    def _changed(self, rt: ResourceType, obj: JSON) -> None:
        uid = obj["metadata"].get("uid", "")
        if not uid:
            return
        self._objects[uid] = _object_id(rt, obj)
        owners = _owner_uids(obj)
        previous = self._owners_of.get(uid, set())
        for gone in previous - owners:
            self._dependents[gone].discard(uid)
        for owner in owners - previous:
            self._dependents[owner].add(uid)
        if owners:
            self._owners_of[uid] = owners
        else:
            self._owners_of.pop(uid, None)
        if _waiting_for_dependents(obj):
            self._enqueue("foreground", uid)
        if owners - self._objects.keys():
            self._later(DANGLING_CHECK_DELAY, "dependent", uid)

    def _deleted(self, obj: JSON) -> None:
        uid = obj["metadata"].get("uid", "")
        self._objects.pop(uid, None)
        for owner in self._owners_of.pop(uid, set()):
            self._dependents[owner].discard(uid)
            if not self._dependents[owner]:
                del self._dependents[owner]
            # a foreground owner may have been waiting for this one
            self._enqueue("foreground", owner)
        if self._dependents.get(uid):
            self._enqueue("owner-gone", uid)

    def _enqueue(self, action: str, uid: str) -> None:
        if self._queue is not None:
            self._queue.put_nowait((action, uid))

    def _later(self, delay: float, action: str, uid: str) -> None:
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()

            def fire() -> None:
                self._timers.discard(handle)
                self._enqueue(action, uid)

            handle = loop.call_later(delay, fire)
            self._timers.add(handle)

    # -- work ------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            action, uid = await self._queue.get()
            try:
                if action == "owner-gone":
                    for dependent in list(self._dependents.get(uid, ())):
                        self._attempt_to_delete(dependent)
                elif action == "foreground":
                    self._process_foreground(uid)
                elif action == "dependent":
                    self._attempt_to_delete(uid)
            except Exception:
                log.exception("garbage collection of %s failed", uid)

    def _get(self, uid: str) -> tuple[ObjectId, JSON] | None:
        where = self._objects.get(uid)
        if where is None:
            return None
        obj = self._store.get(where.rt, where.namespace or None, where.name)
        if obj is None or obj["metadata"].get("uid") != uid:
            return None
        return where, obj

    def _attempt_to_delete(self, uid: str) -> None:
        """Delete a dependent whose owners are all gone or waiting; else drop dangling refs."""
        found = self._get(uid)
        if found is None:
            return
        where, obj = found
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs or "deletionTimestamp" in obj["metadata"]:
            return
        solid, dangling, waiting = [], [], []
        for ref in refs:
            owner = self._get(ref.get("uid", ""))
            if owner is None:
                dangling.append(ref)
            elif _waiting_for_dependents(owner[1]):
                waiting.append(ref)
            else:
                solid.append(ref)
        if solid:
            # a live owner keeps the object: drop dangling references and stop blocking owners
            # that wait for their dependents
            kept = [r for r in refs if r not in dangling]
            unblocked = [
                {**r, "blockOwnerDeletion": False}
                if r in waiting and r.get("blockOwnerDeletion")
                else r
                for r in kept
            ]
            if unblocked != refs:
                self._rewrite_refs(where, obj, unblocked)
            return
        if not dangling and not waiting:
            return
        # a dependent of a foreground deletion that has dependents itself cascades in foreground
        policy = "Foreground" if waiting and self._dependents.get(uid) else "Background"
        with contextlib.suppress(ApiError):
            delete_object(
                self._store,
                where.rt,
                where.namespace or None,
                where.name,
                propagation=policy,
                preconditions={"uid": uid},
            )

    def _process_foreground(self, uid: str) -> None:
        """Delete the dependents of a foreground deletion; finish it once none blocks it."""
        found = self._get(uid)
        if found is None:
            return
        where, owner = found
        if not _waiting_for_dependents(owner):
            return
        dependents = list(self._dependents.get(uid, ()))
        for dependent_uid in dependents:
            self._attempt_to_delete(dependent_uid)
        for dependent_uid in dependents:
            dependent = self._get(dependent_uid)
            refs = dependent[1]["metadata"].get("ownerReferences") or [] if dependent else []
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                return
        new = copy.deepcopy(owner)
        new["metadata"]["finalizers"] = [
            f for f in new["metadata"].get("finalizers") or [] if f != FOREGROUND
        ]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        updated = self._store.update(where.rt, new)
        remove_if_finalized(self._store, where.rt, updated)

    def _rewrite_refs(self, where: ObjectId, obj: JSON, refs: list[JSON]) -> None:
        new = copy.deepcopy(obj)
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self._store.update(where.rt, new)
