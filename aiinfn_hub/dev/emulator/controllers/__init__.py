"""The emulated cluster's controllers: scheduler, kubelet, Job controller, garbage collector.

They follow the store's changes through one synchronous listener that only updates their
caches and queues work; asyncio workers on the emulator's loop then write back through the
store (and the shared deletion rules), as the real components do through the API server.

Containers are simulated unless ``run_processes`` is set (the local platform), in which case
each container's ``command`` + ``args`` (``args`` alone when there is no ``command``, as for an
image without ENTRYPOINT) runs as a local process with its own loopback pod IP.
Per-pod annotations steer a simulated pod:

- ``emulator.aiinfn.dev/outcome``: ``run`` (default: keep running), ``succeed`` (exit 0),
  ``fail`` (exit 1), or ``process`` (run the command as a local process, only when
  ``run_annotated_processes`` is set: a pod's author must not get to run commands on this
  machine from an emulator that was not started to run them);
- ``emulator.aiinfn.dev/outcome-after``: seconds from the container's start to that exit;
- ``emulator.aiinfn.dev/exit-code``: the exit code to use instead of 0 or 1.

Tests can do the same with ``Controllers.set_pod_outcome``. A local process's HOME and working
directory is ``<state_dir>/pods/<namespace>_<pod>/`` (a ``workingDir`` of ``/x`` becomes
``<that folder>/root/x``) and its output goes to ``<state_dir>/pods/<namespace>_<pod>.logs/``;
both are removed with the pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store import Store, WatchEvent
from .events import EventRecorder
from .garbage_collector import GarbageCollector
from .jobs import JobController
from .kubelet import Kubelet
from .outcomes import EXIT_CODE_ANNOTATION, OUTCOME_AFTER_ANNOTATION, OUTCOME_ANNOTATION, Outcome
from .scheduler import Scheduler

__all__ = [
    "EXIT_CODE_ANNOTATION",
    "OUTCOME_AFTER_ANNOTATION",
    "OUTCOME_ANNOTATION",
    "ControllerOptions",
    "Controllers",
]


@dataclass
class ControllerOptions:
    """How the controllers run the pods."""

    # per-pod working folders and log files go under state_dir/pods/
    state_dir: Path
    # run every pod's container command as a local process (the local platform); otherwise
    # containers are simulated
    run_processes: bool = False
    # run as local processes the pods annotated "emulator.aiinfn.dev/outcome: process" (and
    # simulate the others); without it, or run_processes, that annotation runs nothing
    run_annotated_processes: bool = False
    # simulated image pull/start time in seconds (tests use 0)
    startup_delay: float = 0.0


class Controllers:
    """All controllers of one emulated cluster, started and stopped together."""

    def __init__(self, store: Store, options: ControllerOptions) -> None:
        self.store = store
        self.options = options
        self.events = EventRecorder(store)
        self.scheduler = Scheduler(store, self.events)
        self.kubelet = Kubelet(
            store,
            self.events,
            Path(options.state_dir),
            run_processes=options.run_processes,
            run_annotated_processes=options.run_annotated_processes,
            startup_delay=options.startup_delay,
        )
        self.jobs = JobController(store, self.events)
        self.garbage_collector = GarbageCollector(store)
        self._started = False

    def start(self) -> None:
        """Register the store listener and start the workers (inside the running loop)."""
        if self._started:
            return
        self._started = True
        self.garbage_collector.start()
        self.scheduler.start()
        self.jobs.start()
        self.kubelet.start()
        self.store.add_listener(self._observe)

    async def stop(self) -> None:
        """Stop the workers and every local process (SIGTERM, then SIGKILL after a second)."""
        if not self._started:
            return
        self._started = False
        self.store.remove_listener(self._observe)
        await self.scheduler.stop()
        await self.jobs.stop()
        await self.garbage_collector.stop()
        await self.kubelet.stop()

    def set_pod_outcome(
        self,
        namespace: str,
        name: str,
        outcome: str,
        *,
        after: float = 0.0,
        exit_code: int | None = None,
    ) -> None:
        """Test hook: a pod's simulated containers "succeed", "fail" or "run" (stay running).

        Applies to the pod now (``after`` counted from now) or, if it does not run yet, from
        its containers' start; it overrides the outcome annotations.
        """
        self.kubelet.set_pod_outcome(namespace, name, Outcome(outcome, max(after, 0.0), exit_code))

    def _observe(self, event: WatchEvent) -> None:
        # the GC first: it must know an owner's uid before a dependent created right after it
        self.garbage_collector.observe(event)
        self.scheduler.observe(event)
        self.jobs.observe(event)
        self.kubelet.observe(event)
