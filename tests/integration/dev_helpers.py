"""``aiinfn-dev dev`` run as a user runs it, for the tests: start, read its output, Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from iam_platform import wait_for

BANNER_END = "Ctrl-C stops everything."
# what `bash -c 'scripts/platform &'` does: a shell without job control starts a background
# command with SIGINT (and SIGQUIT) ignored; the first line shows a background command's
# ignored signals, the second the platform's pid
BACKGROUND_SHELL = 'grep "^SigIgn:" /proc/self/status & wait $!; "$@" & echo "dev pid $!"; wait $!'


class Dev:
    """``aiinfn-dev dev`` in a session of its own; with ``in_background_shell`` started as a
    script's background command (``self.process`` is then the shell, ``self.pid`` the
    platform's process)."""

    def __init__(self, state: Path, port: int, *, in_background_shell: bool = False) -> None:
        self.state, self.port = state, port
        self.url = f"http://127.0.0.1:{port}"
        self.out = state.parent / f"dev-{port}.out"
        argv = [
            sys.executable,
            "-m",
            "aiinfn_hub.dev.cli",
            "dev",
            "--state-dir",
            str(state),
            "--port",
            str(port),
        ]
        if in_background_shell:
            argv = ["bash", "-c", BACKGROUND_SHELL, "bash", *argv]
        self.process = subprocess.Popen(
            argv, stdout=self.out.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.process.pid
        if in_background_shell:
            self.pid = self._platform_pid()

    def _platform_pid(self) -> int:
        """The platform's pid, as the shell printed it (the shell is killed if it did not)."""
        try:
            found = wait_for(
                lambda: (
                    re.search(r"^dev pid (\d+)$", self.output(), re.M)
                    or self.process.poll() is not None
                ),
                30,
                "the shell to start the platform",
            )
            assert found is not True, self.output()
            return int(found.group(1))
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def hub_log_tail(self, lines: int = 60) -> str:
        """The end of the hub's log (hub, proxy, Bunshin), for a failing test's message."""
        log = self.state / "hub.log"
        text = log.read_text(errors="replace") if log.exists() else "(no hub.log)"
        return "\n".join(text.splitlines()[-lines:])

    def interrupt(self, times: int = 1) -> int:
        """Ctrl-C, ``times`` times half a second apart (an impatient user presses it twice)."""
        for i in range(times):
            if i:
                time.sleep(0.5)
            os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(60)


def ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie its new parent has not reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def children_of(state: Path) -> list[str]:
    """Processes started for the platform: their command line, environment or working folder
    names the state folder (every child inherits AIINFN_DEV_STATE_DIR; redis-server, which
    overwrites its environment with its process title, works in the state folder)."""
    return list(platform_processes(state).values())


def kill_platform(state: Path) -> None:
    """SIGKILL every process of the platform (a failed test's clean-up)."""
    for pid in platform_processes(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def platform_processes(state: Path) -> dict[int, str]:
    """The processes of :func:`children_of`, by pid."""
    found = {}
    marker = str(state).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            cwd = os.fsencode(os.readlink(entry / "cwd"))
        except OSError:
            continue
        # a test runner is no child (the state folder, under pytest's tmp, is in every child's
        # command line, so the words "pytest-of-…" there do not tell)
        if any(arg.endswith(b"pytest") for arg in cmdline.split(b"\0")[:3]):
            continue
        if marker in cmdline or marker in environ or cwd.startswith(marker):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


@contextlib.contextmanager
def started_dev(state: Path, port: int) -> Iterator[Dev]:
    """``aiinfn-dev dev`` up (its banner printed) for the block; Ctrl-C afterwards."""
    running = Dev(state, port)
    try:
        wait_for(
            lambda: BANNER_END in running.output() or running.process.poll() is not None,
            120,
            "the banner",
        )
        assert running.process.poll() is None, running.output()
        yield running
    finally:
        if running.process.poll() is None:
            running.interrupt()
