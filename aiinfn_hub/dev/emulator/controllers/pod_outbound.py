"""A pod's way out of this machine: user-mode NAT by slirp4netns, one process per namespace.

On a cluster a pod reaches the internet (``pip install``, a dataset's URL) through its node's
NAT. The emulator changes nothing of this machine's network configuration (its bridge has
forwarding off, no firewall rule is written), so each process-mode pod's namespace gets
slirp4netns (what rootless Podman uses) instead: a tap device ``tap0`` holding ``10.0.2.100``
with the default route, whose connections slirp4netns makes itself from this machine's
network stack. Pod-to-pod and pod-to-gateway traffic stays on ``eth0`` (the /16 route).

- ``--disable-host-loopback``: ``10.0.2.2``, slirp's alias of this machine's 127.0.0.1, is
  refused, so a pod never reaches the emulator's API or any loopback-only server this way;
- no ``--enable-sandbox``: that unmounts in a mount namespace of its own, and through the
  shared propagation of ``/run/netns`` it removed other namespaces' mounts (seen here);
- ``--exit-fd``: it ends when the emulator closes the pipe, or dies (killed included), never
  left running for a dead pod; ``--ready-fd``: the set-up is awaited, not guessed.

DNS: a pod reads this machine's ``/etc/resolv.conf`` (process-mode pods share its files); a
resolver at a loopback address (systemd-resolved's 127.0.0.53) cannot be reached from a pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO

TAP = "tap0"
SLIRP_HOST_LOOPBACK = "10.0.2.2"  # refused (--disable-host-loopback)


class OutboundError(Exception):
    """slirp4netns could not give a namespace its way out (the reason is the message)."""


def outbound_unavailable() -> str | None:
    """Why pods cannot reach beyond this machine here; None when they can."""
    if shutil.which("slirp4netns") is None:
        return "slirp4netns is not installed"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "/dev/net/tun cannot be opened"
    return None


class Outbound:
    """One namespace's slirp4netns; ``stop()`` ends it."""

    def __init__(self, process: asyncio.subprocess.Process, exit_fd: int, log: IO[bytes]) -> None:
        self.process = process
        self._exit_fd: int | None = exit_fd
        self._log = log

    @classmethod
    async def start(cls, netns: Path, timeout: float = 30) -> Outbound:
        """slirp4netns for the namespace mounted at ``netns``, returned once ``tap0`` is up
        with the default route; OutboundError with its words otherwise."""
        exit_read, exit_write = os.pipe()
        ready_read, ready_write = os.pipe()
        log = tempfile.TemporaryFile()  # noqa: SIM115 (open while the process lives)
        try:
            process = await asyncio.create_subprocess_exec(
                "slirp4netns",
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "--netns-type=path",
                f"--exit-fd={exit_read}",
                f"--ready-fd={ready_write}",
                str(netns),
                TAP,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(exit_read, ready_write),
            )
        except OSError as exc:
            for fd in (exit_write, ready_read):
                os.close(fd)
            log.close()
            raise OutboundError(f"slirp4netns: {exc.strerror or exc}") from exc
        finally:
            os.close(exit_read)
            os.close(ready_write)
        outbound = cls(process, exit_write, log)
        try:
            ready = await outbound._ready(ready_read, timeout)
        except BaseException:  # cancelled (the kubelet stopping): end it without waiting
            outbound.abandon()
            raise
        finally:
            os.close(ready_read)
        if not ready:
            await outbound._end()
            why = outbound.output()
            outbound._log.close()
            raise OutboundError(f"slirp4netns failed for {netns.name}: {why}")
        return outbound

    async def _ready(self, ready_fd: int, timeout: float) -> bool:
        """Whether slirp4netns wrote "1" on its ready pipe (it closes it when it dies first)."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(ready_fd, wake)
        try:
            await asyncio.wait_for(readable, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(ready_fd)
        return os.read(ready_fd, 1) == b"1"

    def output(self) -> str:
        """What slirp4netns printed: its last lines before any usage text, bounded."""
        self._log.seek(0)
        lines = []
        for line in self._log.read(65536).decode(errors="replace").splitlines():
            if line.startswith("Usage:"):
                break
            if line.strip():
                lines.append(line.strip())
        return "; ".join(lines[-5:])[:500] or "no output"

    def abandon(self) -> None:
        """End it now, from code that cannot wait: its exit pipe closed, then SIGKILL; the
        event loop reaps it."""
        if self._exit_fd is not None:
            os.close(self._exit_fd)
            self._exit_fd = None
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self._log.close()

    async def stop(self) -> None:
        """End it (see ``_end``) and drop what it printed."""
        await self._end()
        self._log.close()

    async def _end(self, grace: float = 5) -> None:
        """Close its exit pipe (it ends), killing it if it has not after ``grace`` seconds."""
        if self._exit_fd is not None:
            os.close(self._exit_fd)
            self._exit_fd = None
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
