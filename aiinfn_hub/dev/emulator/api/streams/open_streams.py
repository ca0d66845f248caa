"""The upgraded connections (exec, attach, port-forward) open now, so a stopping emulator can
end them: tornado's ``close_all_connections`` no longer reaches a connection once it is
upgraded, and a client such as ``kubectl port-forward`` would wait on a server that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class OpenStreams:
    """Each open stream's serving task and how to close its connection."""

    def __init__(self) -> None:
        self._open: dict[asyncio.Task[None], Callable[[], None]] = {}

    def track(self, task: asyncio.Task[None], close: Callable[[], None]) -> None:
        self._open[task] = close
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._open.pop(task, None)

    def __len__(self) -> int:
        return len(self._open)

    async def close_all(self, grace: float = 0.5, timeout: float = 2.0) -> None:
        """End every stream: ``grace`` seconds for sessions ending by themselves (an exec
        whose container was just stopped reports its exit code), then close the connections,
        ``timeout`` seconds for the sessions to notice, then cancel what is left."""
        if self._open:
            await asyncio.wait(list(self._open), timeout=grace)
        for close in list(self._open.values()):
            with contextlib.suppress(Exception):
                close()
        tasks = list(self._open)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
