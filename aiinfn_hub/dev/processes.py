"""Child processes of the local platform: started in their own session, logged to a file, and
stopped as a whole group, so Ctrl-C or a failed test leaves no orphan behind.

A child may start processes of its own in sessions of their own (JupyterHub does so for
configurable-http-proxy and its managed services), which a signal to the child's group does
not reach: stopping a child also ends what is left of the processes below it.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self


class ProcessError(RuntimeError):
    """A child process did not come up; the message names it and the end of its log."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_ports(count: int, host: str = "127.0.0.1", exclude: Sequence[int] = ()) -> list[int]:
    """``count`` distinct TCP ports free on ``host`` now, none of ``exclude``.

    Between choosing a port and a server binding it, someone else may take it. Two ways that
    happen are avoided: successive ``bind(0)`` calls can return the same port twice, and a
    port of the ephemeral range is what every outgoing connection on the machine is given. So
    ports are drawn at random below the ephemeral range, each checked by binding it, the
    sockets held open together.
    """
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 12000), low))
    random.SystemRandom().shuffle(candidates)
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        for port in candidates:
            if len(ports) == count:
                break
            if port in exclude:
                continue
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind((host, port))
            except OSError:
                continue
            ports.append(port)
    if len(ports) < count:
        raise RuntimeError(f"no {count} free ports below {low} on {host}")
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (see :func:`free_ports`)."""
    return free_ports(1, host)[0]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound, to report a busy port before starting anything."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(path: Path, limit: int = 3000) -> str:
    """The last ``limit`` characters of a log file ("" if it does not exist)."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return ""


_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux's child subreaper), so that a
    process whose parent died (a proxy left by a killed hub) stays findable below this one."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time)`` of ``pid`` from ``/proc``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (in parentheses) may hold spaces and parentheses: split after it
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def process_report(pid: int | None) -> str:
    """What ``pid`` is doing now (state, kernel wait channel, CPU seconds) and the machine's
    load: what tells a stuck process from a starved one when a start times out."""
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "?"
    if pid is None:
        return f"not started; load average {load}"
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
        threads = fields[17]
    except (OSError, ValueError, IndexError):
        return f"process {pid} gone; load average {load}"
    return (
        f"process {pid} state {fields[0]}, waiting in {wchan}, {threads} threads, "
        f"{cpu:.1f} s of CPU; load average {load}"
    )


def descendants(pid: int) -> list[tuple[int, int]]:
    """Every process below ``pid`` now, as ``(pid, start time)`` (the start time tells a
    process from a later one given the same pid)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[1], []).append((int(entry.name), stat[2]))
    found: list[tuple[int, int]] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _alive(process: tuple[int, int]) -> bool:
    pid, started = process
    stat = _stat(pid)
    if stat is None or stat[2] != started:
        return False
    if stat[0] in ("Z", "X"):  # ended; reap it if it is ours (adopted as subreaper)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def end_processes(processes: Sequence[tuple[int, int]], grace: float = 5.0) -> list[int]:
    """SIGTERM those of ``processes`` still running, SIGKILL what is left after ``grace``
    seconds; the pids of those that were still running."""
    running = [p for p in processes if _alive(p)]
    left = running
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _alive(p)]
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [pid for pid, _ in running]


class ManagedProcess:
    """One child process with its log file; ``stop()`` signals its whole process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self.process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except FileNotFoundError as exc:
                raise ProcessError(f"{self.name}: cannot run {self.argv[0]!r}: {exc}") from None
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until it holds; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ProcessError(
                    f"{self.name} exited (code {self.returncode}) before {what}; "
                    f"its log {self.log_path} ends with:\n{log_tail(self.log_path)}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise ProcessError(
            f"{self.name} did not get to {what} within {timeout:.0f} s "
            f"({process_report(self.process.pid if self.process else None)}); "
            f"its log {self.log_path} ends with:\n{log_tail(self.log_path)}"
        )

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it if the process is not gone after ``grace``
        seconds, then end what is left of the processes that were below it (SIGTERM, SIGKILL
        after a few seconds), including those it started in sessions of their own."""
        process = self.process
        # once reaped, its pid (and group id) may be another's: what it left is then ended by
        # whoever adopted it (see become_subreaper)
        if process is None or process.poll() is not None:
            return
        below = descendants(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        end_processes(below)


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now (a readiness check)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class LocalService(abc.ABC):
    """A helper server run as one child process: ``with Service(...) as s:`` starts and stops
    it. Subclasses start ``self.process`` in ``start()``."""

    process: ManagedProcess | None = None

    @abc.abstractmethod
    def start(self) -> Self:
        """Start the process and return once it serves."""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
