"""The kubelet of every node: runs the pods bound to nodes, simulated or as local processes.

One kubelet object serves all nodes. A pod bound to a node that exists gets a pod worker (see
``pod_worker``); a pod bound to a node that does not exist is left alone, like on a cluster
whose node never registered (a graceful delete removes it at once, as the pod GC would).

Virtual nodes (label ``type=virtual-kubelet``, or ``kubernetes.io/role=agent`` with the
``virtual-node.interlink/no-schedule`` taint) run their pods remotely in reality: their pods
are simulated, never run as local processes, unless the node is annotated as a local site
(``localSite: true`` in the cluster file): then they run like any node's.

The pod network (pod IPs, and network namespaces for local processes: ``pod_network``) is
opened at ``start`` as ``use_pod_network`` chose (default ``loopback``) and closed at ``stop``,
after the last pod, removing whatever namespace is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from ..cluster import LOCAL_SITE_ANNOTATION
from ..resources import NODES, PODS
from ..store import JSON, Store, WatchEvent
from .events import EventRecorder
from .outcomes import Outcome
from .pod_network import POD_NETWORK_MODES, PodNetwork, PodNetworkMode, open_pod_network
from .pod_worker import NodeContext, PodWorker, log_folder, pod_folder
from .volumes import remove_tree

PodKey = tuple[str, str]
VIRTUAL_NODE_TAINT = "virtual-node.interlink/no-schedule"
_STOP_GRACE = 1.0


def is_virtual_node(node: JSON) -> bool:
    """Whether pods on this node run elsewhere (virtual-kubelet / interLink offloading), unless
    the node says its remote site is this machine (``localSite`` in the cluster file)."""
    if (node["metadata"].get("annotations") or {}).get(LOCAL_SITE_ANNOTATION) == "true":
        return False
    labels = node["metadata"].get("labels") or {}
    if labels.get("type") == "virtual-kubelet":
        return True
    taints = (node.get("spec") or {}).get("taints") or []
    return labels.get("kubernetes.io/role") == "agent" and any(
        t.get("key") == VIRTUAL_NODE_TAINT for t in taints
    )


class Kubelet:
    """Starts, stops and cleans up pod workers from the store's change events."""

    def __init__(
        self,
        store: Store,
        events: EventRecorder,
        state_dir: Path,
        *,
        run_processes: bool,
        startup_delay: float,
        run_annotated_processes: bool = False,
    ) -> None:
        self._store = store
        self._events = events
        self._state_dir = state_dir
        self._startup_delay = startup_delay
        self._pod_network_mode: PodNetworkMode = "loopback"
        self._ctx: NodeContext | None = None
        self._run_processes = run_processes
        self._run_annotated_processes = run_annotated_processes
        self._workers: dict[str, PodWorker] = {}
        self._by_key: dict[PodKey, str] = {}
        self._outcomes: dict[PodKey, Outcome] = {}
        self._removed: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    def worker(self, uid: str) -> PodWorker | None:
        """The worker of the pod with ``uid`` on this kubelet, if any."""
        return self._workers.get(uid)

    def use_pod_network(self, mode: PodNetworkMode) -> None:
        """Which pod network ``start`` opens: ``loopback`` (default), ``netns`` or ``auto``
        (see ``pod_network.open_pod_network``)."""
        if mode not in POD_NETWORK_MODES:
            raise ValueError(f"unknown pod network {mode!r}: one of {', '.join(POD_NETWORK_MODES)}")
        if self._ctx is not None:
            raise RuntimeError("the pod network is chosen before the kubelet starts")
        self._pod_network_mode = mode

    @property
    def network(self) -> PodNetwork:
        """The pod network (once started)."""
        if self._ctx is None:
            raise RuntimeError("the kubelet has no pod network before it starts")
        return self._ctx.network

    @property
    def addresses(self) -> PodNetwork:
        """The pod network, which counts the pods holding an IP (``len``)."""
        return self.network

    @property
    def startup_delay(self) -> float:
        """Simulated image pull time of a first pull on a node, in seconds."""
        return self._startup_delay

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._ctx is None:
            network = open_pod_network(
                self._pod_network_mode,
                processes=self._run_processes or self._run_annotated_processes,
            )
            self._ctx = NodeContext(
                self._store, self._events, network, self._state_dir, self._startup_delay
            )
        for pod in self._store.iter(PODS):
            self._pod_changed(pod)

    async def stop(self) -> None:
        """SIGTERM every local process, SIGKILL what is left after a second, end all workers."""
        self._stopped = True
        workers = list(self._workers.values())
        for worker in workers:
            if not worker.done:
                worker.removed = True
                worker.request_stop(_STOP_GRACE)
        waiting = [asyncio.ensure_future(w.wait_done()) for w in workers if not w.done]
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=_STOP_GRACE + 1)
            for worker in workers:
                worker.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._ctx is not None:
            # namespaces left by cancelled workers go too; another emulator may take it now
            await self._ctx.network.close()

    # -- test hook -------------------------------------------------------------------------
    def set_pod_outcome(self, namespace: str, name: str, outcome: Outcome) -> None:
        """Make a pod's simulated containers succeed, fail or keep running (now or later)."""
        key = (namespace, name)
        self._outcomes[key] = outcome
        uid = self._by_key.get(key)
        worker = self._workers.get(uid or "")
        if worker is not None and not worker.done:
            worker.apply_outcome(outcome)

    # -- change events ---------------------------------------------------------------------
    def observe(self, event: WatchEvent) -> None:
        if self._stopped:
            return
        if event.rt.key == PODS.key:
            if event.type == "DELETED":
                self._pod_deleted(event.obj)
            else:
                self._pod_changed(event.obj)
        elif event.rt.key == NODES.key and event.type == "ADDED":
            name = event.obj["metadata"]["name"]
            for pod in self._store.iter(PODS):
                if pod.get("spec", {}).get("nodeName") == name:
                    self._pod_changed(pod)

    def _pod_changed(self, pod: JSON) -> None:
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        node_name = pod.get("spec", {}).get("nodeName")
        if not node_name:
            return
        worker = self._workers.get(uid)
        deleting = "deletionTimestamp" in meta
        if worker is None:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return
            node = self._store.get(NODES, None, node_name)
            if node is None:
                if deleting and not meta.get("finalizers"):
                    self._soon(self._remove_orphan, meta["namespace"], meta["name"], uid)
                return
            worker = self._start_worker(pod, node)
        if deleting and not worker.done:
            worker.request_stop(float(meta.get("deletionGracePeriodSeconds") or 0))

    def _start_worker(self, pod: JSON, node: JSON) -> PodWorker:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        outcome = (
            self._outcomes.get(key)
            or Outcome.from_annotations(meta.get("annotations"))
            or Outcome()
        )
        local = self._runs_locally(outcome) and not is_virtual_node(node)
        assert self._ctx is not None, "pods start once the kubelet has"
        worker = PodWorker(self._ctx, pod, node, local=local, outcome=outcome, on_done=self._done)
        self._workers[meta["uid"]] = worker
        self._by_key[key] = meta["uid"]
        worker.start()
        return worker

    def _runs_locally(self, outcome: Outcome) -> bool:
        """Process mode only: the ``process`` annotation alone must not run a pod's command
        (whoever can create a pod would run code on this machine)."""
        if self._run_processes:
            return True
        return self._run_annotated_processes and outcome.kind == "process"

    def _pod_deleted(self, pod: JSON) -> None:
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        key = (meta["namespace"], meta["name"])
        self._removed.add(uid)
        worker = self._workers.get(uid)
        if worker is None or worker.done:
            self._cleanup(key, uid)
        else:
            worker.object_removed()
        if self._by_key.get(key) == uid:
            self._outcomes.pop(key, None)

    def _done(self, worker: PodWorker) -> None:
        if (
            worker.uid in self._removed
            or self._store.get(PODS, worker.namespace, worker.name) is None
        ):
            self._cleanup((worker.namespace, worker.name), worker.uid)

    def _cleanup(self, key: PodKey, uid: str) -> None:
        """Forget a removed pod: worker, logs and folders (unless a new pod has its name);
        its worker gave its network back when it finished."""
        self._workers.pop(uid, None)
        self._removed.discard(uid)
        if self._by_key.get(key) not in (None, uid):
            return
        self._by_key.pop(key, None)
        namespace, name = key
        for log_key in [k for k in self._store.logs if k[:2] == key]:
            del self._store.logs[log_key]
        for folder in (
            pod_folder(self._state_dir, namespace, name),
            log_folder(self._state_dir, namespace, name),
        ):
            remove_tree(folder)

    def _remove_orphan(self, namespace: str, name: str, uid: str) -> None:
        pod = self._store.get(PODS, namespace, name)
        if (
            pod is not None
            and pod["metadata"].get("uid") == uid
            and not pod["metadata"].get("finalizers")
        ):
            self._store.delete(PODS, namespace, name)

    def _soon(self, fn: Callable[..., None], *args: str) -> None:
        assert self._loop is not None
        self._loop.call_soon(fn, *args)

    # -- introspection for tests -----------------------------------------------------------
    def local_pids(self) -> dict[PodKey, list[int]]:
        """The PIDs of the local processes of every pod (tests check they are gone)."""
        out: dict[PodKey, list[int]] = {}
        for worker in self._workers.values():
            pids = worker.pids()
            if pids:
                out[(worker.namespace, worker.name)] = pids
        return out
