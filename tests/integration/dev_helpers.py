"""``aiinfn-dev dev`` run as a user runs it, for the tests: start, read its output, Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from iam_platform import wait_for

BANNER_END = "Ctrl-C stops everything."


class Dev:
    def __init__(self, state: Path, port: int) -> None:
        self.state, self.port = state, port
        self.url = f"http://127.0.0.1:{port}"
        self.out = state.parent / f"dev-{port}.out"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiinfn_hub.dev.cli",
                "dev",
                "--state-dir",
                str(state),
                "--port",
                str(port),
            ],
            stdout=self.out.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

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


def children_of(state: Path) -> list[str]:
    """Processes started for the platform: their command line or environment names the state
    folder (the hub and the proxy get it as AIINFN_STATE_DIR)."""
    found = []
    marker = str(state).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"pytest" in cmdline:
            continue
        if marker in cmdline or marker in environ:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
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
