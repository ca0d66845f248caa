"""Containers as local processes: start, signal, wait, and probes (exec in the container's
environment, httpGet and tcpSocket against the pod IP); what ``kubectl exec`` needs of a
running container (``RunningContainer``, ``find_executable``, ``LocalProcess.identity``).

A pod with a network namespace of its own (``pod_network``) has its processes, exec probes
included, started inside it (``netns``); httpGet and tcpSocket probes still dial the pod IP
from this machine, as the kubelet does from the node.

Each process runs in its own session (its own process group), so stopping a container signals
everything it started, the way a container runtime stops a whole container. Output goes to a
log file the API's ``log`` subresource reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .netns import entering

JSON = dict[str, Any]
# kubelet-style exit code of a process ended by a signal: 128 + signal number
_SIGNAL_BASE = 128


class StartError(Exception):
    """The runtime could not start the container (reported as ``StartError``, exit code 128)."""


def find_executable(name: str, env: Mapping[str, str]) -> str:
    """What runs for ``argv[0]``: a path as given, else a lookup in the container's PATH;
    StartError in the runtime's words (runc's) when there is nothing to run."""
    if "/" in name:
        return name
    executable = shutil.which(name, path=env.get("PATH"))
    if executable is None:
        raise StartError(f'exec: "{name}": executable file not found in $PATH')
    return executable


class LocalProcess:
    """One running container process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid

    @classmethod
    async def start(
        cls,
        argv: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        open_stdin: bool = False,
        netns: str | None = None,
    ) -> LocalProcess:
        """Start ``argv``; StartError when the executable is missing or cannot run.

        ``open_stdin`` (the container's ``stdin: true``) gives it a pipe ``kubectl attach``
        can write to; otherwise it reads from /dev/null, like a container without stdin.
        ``netns``: the pod's network namespace, which the process starts in.
        """
        if not argv:
            raise StartError("no command to run")
        executable = find_executable(argv[0], env)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            try:
                with entering(netns) as join_network:
                    process = await asyncio.create_subprocess_exec(
                        executable,
                        *argv[1:],
                        cwd=str(cwd),
                        env=dict(env),
                        stdin=subprocess.PIPE if open_stdin else subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=join_network,
                    )
            except OSError as exc:
                raise StartError(f'exec: "{argv[0]}": {exc.strerror or exc}') from exc
            except subprocess.SubprocessError as exc:  # joining the namespace failed
                raise StartError(f"failed to join the pod's network namespace: {exc}") from exc
        return cls(process)

    def identity(self) -> tuple[int, int, list[int]] | None:
        """``(uid, gid, supplementary groups)`` the process runs as (Linux ``/proc``); None
        once it is gone. ``kubectl exec`` joins the container as this user."""
        try:
            lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        except OSError:
            return None
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        try:
            uid = int(fields["Uid"].split()[1])  # real, effective, saved, filesystem
            gid = int(fields["Gid"].split()[1])
            groups = [int(g) for g in fields.get("Groups", "").split()]
        except (KeyError, IndexError, ValueError):
            return None
        return uid, gid, groups

    @property
    def stdin(self) -> asyncio.StreamWriter | None:
        """The pipe to the process's stdin (``open_stdin``), None when it has none."""
        return self._process.stdin

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    async def wait(self) -> int:
        """Wait for the exit; a death by signal N is reported as 128 + N like the runtime does."""
        code = await self._process.wait()
        return _SIGNAL_BASE - code if code < 0 else code

    def signal_group(self, sig: signal.Signals) -> None:
        """Signal the whole process group (the container), ignoring one that is already gone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def resolve_port(port: Any, container: JSON) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


@dataclass(frozen=True)
class ExecContext:
    """What an exec probe (or ``kubectl exec``) runs in: the container's environment, working
    folder, the rewriting of its mountPaths to host folders and the pod's network namespace
    (None: this machine's network)."""

    env: Mapping[str, str]
    cwd: Path
    translate: Callable[[str], str]
    netns: str | None = None


@dataclass(frozen=True)
class RunningContainer:
    """A container running as a local process: what exec, attach and port-forward reach."""

    process: LocalProcess
    context: ExecContext
    log_path: Path | None


async def probe_once(
    probe: JSON,
    host: str,
    container: JSON,
    timeout: float = 1.0,
    exec_context: ExecContext | None = None,
) -> bool:
    """One ``exec`` (exit 0), ``httpGet`` (2xx/3xx) or ``tcpSocket`` check; probe kinds we
    cannot run (grpc, exec with no context) pass."""
    if "exec" in probe:
        if exec_context is None:
            return True
        command = [str(part) for part in (probe["exec"] or {}).get("command") or []]
        seconds = float(probe.get("timeoutSeconds") or timeout)
        return await _exec_probe(command, exec_context, seconds)
    if "httpGet" in probe:
        action = probe["httpGet"]
    elif "tcpSocket" in probe:
        action = probe["tcpSocket"]
    else:
        return True
    port = resolve_port(action.get("port"), container)
    if port is None:
        return False
    target = action.get("host") or host
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(target, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        if "tcpSocket" in probe:
            return True
        path = action.get("path") or "/"
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {target}:{port}\r\nUser-Agent: kube-probe/1.33\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _exec_probe(command: list[str], context: ExecContext, timeout: float) -> bool:
    """Run the probe command like a process of the container; success is exit code 0 within
    the timeout (a command that overruns is killed, with its process group)."""
    argv = [context.translate(part) for part in command]
    if not argv:
        return False
    try:
        executable = find_executable(argv[0], context.env)
    except StartError:
        return False
    try:
        with entering(context.netns) as join_network:
            process = await asyncio.create_subprocess_exec(
                executable,
                *argv[1:],
                cwd=str(context.cwd),
                env=dict(context.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=join_network,
            )
    except (OSError, subprocess.SubprocessError):
        return False
    try:
        return await asyncio.wait_for(process.wait(), timeout) == 0
    except TimeoutError:
        return False
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
