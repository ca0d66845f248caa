"""The kubelet's running containers and pod IPs, read-only, for ``exec``, ``attach`` and
``portforward`` (the API's ``ContainerRuntime``).

The kubelet keeps them inside its pod workers; this adapter is the one place that reads them
there, so the API never touches a worker. Only a live local process is handed out, and only
the pod IP the kubelet allocated: a status written through the API cannot redirect a
port-forward elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from ..store import Store
from .kubelet import Kubelet
from .processes import RunningContainer


class KubeletContainers:
    """``ContainerRuntime`` over one ``Kubelet``."""

    def __init__(self, kubelet: Kubelet, store: Store) -> None:
        self._kubelet = kubelet
        self._store = store

    def running_container(
        self, namespace: str, pod: str, uid: str, container: str
    ) -> RunningContainer | None:
        worker = self._kubelet.worker(uid)
        if worker is None or worker.done or not worker.local:
            return None
        running = worker.running_process(container)
        if running is None:
            return None
        process, context = running
        log = self._store.logs.get((namespace, pod, container))
        return RunningContainer(process, context, log if isinstance(log, Path) else None)

    def pod_address(self, uid: str) -> str | None:
        worker = self._kubelet.worker(uid)
        if worker is None or worker.done:
            return None
        return worker.ip
