"""Shared helpers of the controller tests: a store + controllers on the test's loop, no HTTP.

Objects are created straight in the store with the fields the API server's admission would
set (``default_on_create``), so the controllers see what they would see behind the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiinfn_hub.dev.emulator.api.admission import default_on_create
from aiinfn_hub.dev.emulator.controllers import ControllerOptions, Controllers
from aiinfn_hub.dev.emulator.deletion import delete_object
from aiinfn_hub.dev.emulator.resources import (
    EVENTS,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    PRIORITYCLASSES,
    ResourceType,
)
from aiinfn_hub.dev.emulator.store import Store

JSON = dict[str, Any]


def make_node(
    name: str,
    capacity: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    taints: list[JSON] | None = None,
    unschedulable: bool = False,
    ready: bool = True,
    address: str = "127.1.0.1",
) -> JSON:
    """A registered Node as the cluster file would load it."""
    allocatable = {"cpu": "8", "memory": "32Gi", "pods": "110", **(capacity or {})}
    spec: JSON = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, **(labels or {})},
        },
        "spec": spec,
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [{"type": "InternalIP", "address": address}],
        },
    }


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    command: list[str] | None = None,
    **spec: Any,
) -> JSON:
    """A pod with one container ``main``; extra keyword arguments go into ``spec``."""
    container: JSON = {"name": "main", "image": "python:3.11"}
    resources: JSON = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    if resources:
        container["resources"] = resources
    if command:
        container["command"] = command
    meta: JSON = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"containers": [container], **spec}}


class ControllerCluster:
    """A store with running controllers; helpers create objects and wait for conditions."""

    def __init__(self, store: Store, controllers: Controllers, state_dir: Path) -> None:
        self.store = store
        self.controllers = controllers
        self.state_dir = state_dir
        self._changed = asyncio.Event()
        store.add_listener(lambda _event: self._changed.set())

    def add_node(self, name: str, capacity: dict[str, str] | None = None, **kw: Any) -> JSON:
        return self.store.create(NODES, make_node(name, capacity, **kw))

    def add_priority_class(self, name: str, value: int, policy: str | None = None) -> None:
        pc: JSON = {"metadata": {"name": name}, "value": value}
        if policy:
            pc["preemptionPolicy"] = policy
        default_on_create(self.store, PRIORITYCLASSES, pc)
        self.store.create(PRIORITYCLASSES, pc)

    def create(self, rt: ResourceType, obj: JSON) -> JSON:
        """Create as the API would: admission defaults first."""
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {}).setdefault("namespace", "default")
        if rt.key == JOBS.key:
            obj["metadata"]["uid"] = str(uuid.uuid4())
        default_on_create(self.store, rt, obj)
        return self.store.create(rt, obj)

    def create_pod(self, name: str, **kw: Any) -> JSON:
        return self.create(PODS, make_pod(name, **kw))

    def pod(self, name: str, namespace: str = "default") -> JSON | None:
        return self.store.get(PODS, namespace, name)

    def delete(self, rt: ResourceType, name: str, namespace: str = "default", **kw: Any) -> JSON:
        return delete_object(self.store, rt, namespace, name, **kw)

    def events(self, name: str, reason: str | None = None) -> list[JSON]:
        return [
            e
            for e in self.store.list(EVENTS)
            if e["involvedObject"]["name"] == name and reason in (None, e["reason"])
        ]

    async def wait_for(self, check: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
        """Wait until ``check()`` is truthy and return it; re-checked after every store change
        (and every 50 ms for effects outside the store, such as a process starting)."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            result = check()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def running(self, name: str, timeout: float = 5.0) -> JSON:
        def check() -> JSON | None:
            pod = self.pod(name)
            return pod if pod and pod.get("status", {}).get("phase") == "Running" else None

        return dict(await self.wait_for(check, timeout, f"{name} Running"))

    async def phase(self, name: str, phase: str, timeout: float = 5.0) -> JSON:
        def check() -> JSON | None:
            pod = self.pod(name)
            return pod if pod and pod.get("status", {}).get("phase") == phase else None

        return dict(await self.wait_for(check, timeout, f"{name} {phase}"))

    async def gone(self, rt: ResourceType, name: str, timeout: float = 5.0) -> None:
        await self.wait_for(
            lambda: self.store.get(rt, "default", name) is None, timeout, f"{name} removed"
        )


@contextlib.asynccontextmanager
async def running_cluster(
    state_dir: Path, *, run_processes: bool = False, namespaces: tuple[str, ...] = ("default",)
) -> AsyncIterator[ControllerCluster]:
    """Store + controllers started on the current loop; everything stopped afterwards."""
    store = Store()
    for ns in namespaces:
        store.create(NAMESPACES, {"metadata": {"name": ns}, "status": {"phase": "Active"}})
    controllers = Controllers(
        store, ControllerOptions(state_dir=state_dir, run_processes=run_processes)
    )
    controllers.start()
    cluster = ControllerCluster(store, controllers, state_dir)
    try:
        yield cluster
    finally:
        await controllers.stop()
