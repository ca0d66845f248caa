"""The emulator's controllers: scheduler, kubelet, Job controller and garbage collector.

They subscribe to the store's change events (synchronously, so they only queue work) and write
back through the store and the shared deletion logic, all on the emulator's event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store import Store, WatchEvent
from .events import EventRecorder
from .garbage_collector import GarbageCollector
from .jobs import JobController
from .kubelet import Kubelet
from .scheduler import Scheduler


@dataclass
class ControllerOptions:
    """How the controllers behave."""

    state_dir: Path
    # run every pod's container command as a local process (the local platform)
    run_processes: bool = False
    # simulated image pull and start time (tests use 0)
    startup_delay: float = 0.0


class Controllers:
    """All controllers of one emulated cluster."""

    def __init__(self, store: Store, options: ControllerOptions) -> None:
        self.store = store
        self.options = options
        self.events = EventRecorder(store)
        self.scheduler = Scheduler(store, self.events)
        self.kubelet = Kubelet(
            store, self.events, options.state_dir, options.run_processes, options.startup_delay
        )
        self.jobs = JobController(store, self.events)
        self.garbage_collector = GarbageCollector(store)
        self._started = False

    def start(self) -> None:
        """Subscribe to the store and start the loops (inside the emulator's running loop)."""
        self.garbage_collector.start()
        self.scheduler.start()
        self.kubelet.start()
        self.jobs.start()
        self.store.add_listener(self._dispatch)
        self._started = True

    def _dispatch(self, event: WatchEvent) -> None:
        self.garbage_collector.on_event(event)
        self.scheduler.on_event(event)
        self.kubelet.on_event(event)
        self.jobs.on_event(event)

    async def stop(self) -> None:
        """Stop the loops and every local process."""
        if not self._started:
            return
        self.store.remove_listener(self._dispatch)
        await self.jobs.stop()
        await self.scheduler.stop()
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
        """Test hook: make a simulated pod succeed, fail or keep running."""
        self.kubelet.set_pod_outcome(namespace, name, outcome, after=after, exit_code=exit_code)
