"""``kubectl attach`` in process mode: the container's main process's output as it comes, and
its stdin when the container has one.

The process writes stdout and stderr to one log file (the ``log`` subresource's), so attach
follows that file from its current end and sends it all on the stdout channel (stderr when
only stderr is asked for). Stdin reaches the process only when the container spec has
``stdin: true`` and the process was started with a pipe; otherwise it is dropped, as
containerd drops the input of an attach to a container created without stdin. With
``stdinOnce`` the first attach to close stdin closes it for good. The session ends, with a
``Success`` status, when the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from ...controllers.processes import RunningContainer
from .channels import STDERR, STDOUT, success_status
from .exec_session import Send
from .targets import StreamOptions

JSON = dict[str, Any]
_CHUNK = 64 * 1024
_POLL_SECONDS = 0.05


class AttachSession:
    """One attach; the transport calls ``stdin_data`` and ``stdin_closed``."""

    def __init__(self, target: RunningContainer, container: JSON, options: StreamOptions) -> None:
        self._target = target
        self._container = container
        self._options = options
        self._writer = target.process.stdin if options.stdin else None
        # output from the moment of the attach on, even what comes before ``run`` starts
        # (an answer to stdin sent right away would be lost otherwise)
        self._from = _size(target.log_path)

    def stdin_data(self, data: bytes) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(data)

    def stdin_closed(self) -> None:
        writer = self._writer
        if writer is not None and self._container.get("stdinOnce"):
            writer.close()

    def resize(self, columns: int, rows: int) -> None:
        """The process has no terminal here; a resize changes nothing."""

    def client_gone(self) -> None:
        self._writer = None

    async def run(self, send: Send) -> JSON:
        """Send the log as it grows until the process ends; then ``Success``."""
        channel = STDOUT if self._options.stdout else STDERR
        wants_output = self._options.stdout or self._options.stderr
        exited = asyncio.ensure_future(self._target.process.wait())
        path = self._target.log_path
        try:
            if path is None or not wants_output:
                await exited
                return success_status()
            with path.open("rb") as log:
                log.seek(self._from)
                while True:
                    data = log.read(_CHUNK)
                    if data:
                        await send(channel, data)
                        continue
                    if exited.done():
                        return success_status()
                    await asyncio.wait([exited], timeout=_POLL_SECONDS)
        finally:
            exited.cancel()


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0
