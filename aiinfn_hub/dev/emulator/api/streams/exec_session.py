"""``kubectl exec`` in process mode: the command runs like a process of the container.

It gets the container's own environment (downward-API values included), working folder and
mountPaths rewritten to the host folders: the ``ExecContext`` the kubelet built when it
started the container, so exec sees what the container saw. It runs as the user, group and
supplementary groups of the container's main process (read from ``/proc``), as a runtime
runs exec as the container's user: a process-mode container runs as the emulator's user
today, and so does exec; switching needs root, without it exec stays the emulator's user.
In a pod with a network namespace of its own (``ExecContext.netns``) the command starts in
it, as an exec joins its container's namespaces: ``localhost`` is the pod's.

With ``tty`` the command gets a pseudo-terminal as its controlling terminal (stderr joins
stdout, resize messages set the window size, ``TERM`` defaults to ``xterm``); without, one
pipe per requested stream. The command runs in a process group of its own; when the
container's main process ends, what is left of that group is killed, as a container runtime
kills every process of a container that stops.

A simulated container (no local process) has no files to run: every command fails the way
the runtime fails on a command missing from the image.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import struct
import subprocess
import termios
from collections.abc import Awaitable, Callable
from typing import Any

from ...controllers.netns import entering
from ...controllers.processes import RunningContainer, StartError, find_executable
from .channels import STDERR, STDOUT, exit_code_status, internal_error_status, success_status
from .targets import StreamOptions

JSON = dict[str, Any]
Send = Callable[[int, bytes], Awaitable[None]]
_CHUNK = 64 * 1024
# after the command exits, how long output still held open by its children is awaited
_DRAIN_SECONDS = 1.0
# process groups left behind by finished execs, killed when their container ends
_leftovers: set[asyncio.Task[None]] = set()


def runtime_exec_failure(reason: str) -> JSON:
    """The status of a command the runtime could not start (containerd + runc's words)."""
    exec_id = secrets.token_hex(32)
    return internal_error_status(
        "error executing command in container: failed to exec in container: failed to start "
        f'exec "{exec_id}": OCI runtime exec failed: exec failed: unable to start container '
        f"process: {reason}: unknown"
    )


def simulated_exec_status(command: list[str]) -> JSON:
    """A simulated container has no executable files: the runtime's "not found" failure."""
    return runtime_exec_failure(f'exec: "{command[0]}": executable file not found in $PATH')


def _take_terminal() -> None:
    """In the child, after setsid: make its stdin (the pty) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _child_setup(
    identity: tuple[int, int, list[int]] | None, terminal: bool
) -> Callable[[], None] | None:
    """What the child does after joining the pod's network namespace and before exec: take
    the container's identity (only now: joining needs root) and its terminal."""
    if identity is None and not terminal:
        return None

    def setup() -> None:
        if identity is not None:
            uid, gid, groups = identity
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
        if terminal:
            _take_terminal()

    return setup


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


async def wait_fd(fd: int, *, write: bool = False) -> None:
    """Wait until ``fd`` (non-blocking) is readable, or writable."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


class ExecSession:
    """One exec: start the command, pump its stdio over ``send``, return the final status.

    The transport calls ``stdin_data``, ``stdin_closed``, ``resize`` and ``client_gone``.
    """

    def __init__(self, target: RunningContainer, options: StreamOptions) -> None:
        self._target = target
        self._options = options
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._master: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        # the client sends its size at once, maybe before the terminal exists
        self._size: tuple[int, int] | None = None

    # -- from the client -----------------------------------------------------------------
    def stdin_data(self, data: bytes) -> None:
        if self._options.stdin and data:
            self._stdin.put_nowait(data)

    def stdin_closed(self) -> None:
        """The client half-closed stdin (v5 close signal): EOF, or Ctrl-D on a terminal."""
        if self._options.stdin:
            self._stdin.put_nowait(None)

    def resize(self, columns: int, rows: int) -> None:
        if columns > 0 and rows > 0:
            self._size = (columns, rows)
            self._apply_size()

    def _apply_size(self) -> None:
        if self._master is not None and self._size is not None:
            columns, rows = self._size
            with contextlib.suppress(OSError):
                fcntl.ioctl(
                    self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0)
                )

    def client_gone(self) -> None:
        """The connection dropped: hang up a terminal, end stdin of pipes (like a runtime,
        a command that ignores both keeps running until its container ends)."""
        self._stdin.put_nowait(None)
        if self._master is not None and self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGHUP)

    # -- running ---------------------------------------------------------------------------
    async def run(self, send: Send) -> JSON:
        """Run the command to its end; the status to write on the error channel."""
        context = self._target.context
        argv = [context.translate(part) for part in self._options.command]
        env = dict(context.env)
        if self._options.tty:
            env.setdefault("TERM", "xterm")
        try:
            executable = find_executable(argv[0], env)
            process = await self._start(executable, argv[1:], env)
        except StartError as exc:
            return runtime_exec_failure(str(exc))
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            return runtime_exec_failure(f'exec: "{argv[0]}": {reason}')
        self._process = process
        if self._master is not None:
            pumps = [self._pump_terminal(send), self._feed_terminal()]
        else:
            pumps = [self._feed_pipe(process)]
            for stream, channel in ((process.stdout, STDOUT), (process.stderr, STDERR)):
                if stream is not None:
                    pumps.append(self._pump_pipe(stream, channel, send))
        tasks = [asyncio.ensure_future(pump) for pump in pumps]
        try:
            code = await self._wait(process)
            outputs = tasks[1:] if self._master is None else tasks[:1]
            if outputs:
                await asyncio.wait(outputs, timeout=_DRAIN_SECONDS)
        finally:
            for task in tasks:
                task.cancel()
            if self._master is not None:
                os.close(self._master)
                self._master = None
            self._reap_later(process.pid)
        if code == 0:
            return success_status()
        return exit_code_status(self._options.command, code)

    async def _start(
        self, executable: str, args: list[str], env: dict[str, str]
    ) -> asyncio.subprocess.Process:
        identity: dict[str, Any] = {}
        owner = self._target.process.identity()
        if owner is None or os.geteuid() != 0 or owner[0] == 0:
            owner = None
        netns = self._target.context.netns
        if owner is not None and netns is None:
            uid, gid, groups = owner
            identity = {"user": uid, "group": gid, "extra_groups": groups}
        common: dict[str, Any] = {
            "cwd": str(self._target.context.cwd),
            "env": env,
            "start_new_session": True,
            **identity,
        }
        options = self._options
        setup = _child_setup(owner if netns is not None else None, options.tty)
        try:
            with entering(netns, setup) as preexec:
                return await self._spawn(executable, args, common, preexec)
        except subprocess.SubprocessError as exc:  # the child could not join the pod
            raise StartError(f"failed to join the pod's network namespace: {exc}") from exc

    async def _spawn(
        self,
        executable: str,
        args: list[str],
        common: dict[str, Any],
        preexec: Callable[[], None] | None,
    ) -> asyncio.subprocess.Process:
        options = self._options
        if options.tty:
            master, slave = os.openpty()
            self._master = master
            self._apply_size()
            try:
                process = await asyncio.create_subprocess_exec(
                    executable,
                    *args,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    preexec_fn=preexec,
                    **common,
                )
            except BaseException:
                self._master = None
                os.close(master)
                raise
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            return process
        pipe, null = subprocess.PIPE, subprocess.DEVNULL
        return await asyncio.create_subprocess_exec(
            executable,
            *args,
            stdin=pipe if options.stdin else null,
            stdout=pipe if options.stdout else null,
            stderr=pipe if options.stderr else null,
            preexec_fn=preexec,
            **common,
        )

    async def _wait(self, process: asyncio.subprocess.Process) -> int:
        """The command's exit code; killed (137) if its container ends first."""
        own = asyncio.ensure_future(process.wait())
        container = asyncio.ensure_future(self._target.process.wait())
        try:
            await asyncio.wait([own, container], return_when=asyncio.FIRST_COMPLETED)
            if not own.done():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            return _exit_code(await own)
        finally:
            container.cancel()

    def _reap_later(self, group: int) -> None:
        """Kill what the command left running in its group once the container ends."""
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return
        task = asyncio.ensure_future(self._kill_group_after_container(group))
        _leftovers.add(task)
        task.add_done_callback(_leftovers.discard)

    async def _kill_group_after_container(self, group: int) -> None:
        await self._target.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)

    # -- pipes -------------------------------------------------------------------------------
    async def _feed_pipe(self, process: asyncio.subprocess.Process) -> None:
        writer = process.stdin
        if writer is None:
            return
        try:
            while (data := await self._stdin.get()) is not None:
                writer.write(data)
                await writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            writer.close()

    async def _pump_pipe(self, stream: asyncio.StreamReader, channel: int, send: Send) -> None:
        while data := await stream.read(_CHUNK):
            await send(channel, data)

    # -- terminal ----------------------------------------------------------------------------
    async def _pump_terminal(self, send: Send) -> None:
        """Terminal output to stdout until the terminal closes (EIO once the last holder of
        its other end is gone)."""
        master = self._master
        assert master is not None
        while True:
            try:
                data = os.read(master, _CHUNK)
            except BlockingIOError:
                await wait_fd(master)
                continue
            except OSError:
                return
            if not data:
                return
            if self._options.stdout:
                await send(STDOUT, data)

    async def _feed_terminal(self) -> None:
        master = self._master
        assert master is not None
        while True:
            data = await self._stdin.get()
            if data is None:
                data = b"\x04"  # EOF on a terminal is Ctrl-D
            while data:
                try:
                    written = os.write(master, data)
                except BlockingIOError:
                    await wait_fd(master, write=True)
                    continue
                except OSError:
                    return
                data = data[written:]
