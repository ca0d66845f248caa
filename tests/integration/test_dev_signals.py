"""``aiinfn-dev dev`` started in the background by a script, whose shell starts it with SIGINT
ignored: Ctrl-C's signal and SIGTERM still stop it and every process it started, even a hub
that does not stop when asked."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from dev_helpers import BANNER_END, Dev, children_of, ended, kill_platform, platform_processes
from iam_platform import wait_for

from aiinfn_hub.dev.processes import ManagedProcess, free_port

pytestmark = pytest.mark.slow
SIGINT_BIT = 1 << (signal.SIGINT - 1)


@pytest.fixture
def dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dev]:
    """The platform up, started as ``bash -c 'scripts/platform &'`` starts it; a hub that does
    not stop is killed after 3 s (20 s by default)."""
    monkeypatch.setenv("AIINFN_DEV_HUB_GRACE", "3")
    running = Dev(tmp_path / "state", free_port(), in_background_shell=True)
    try:
        wait_for(
            lambda: BANNER_END in running.output() or ended(running.pid),
            120,
            "the banner",
        )
        assert not ended(running.pid), running.output()
        yield running
    finally:
        if not ended(running.pid):
            os.kill(running.pid, signal.SIGKILL)
        kill_platform(running.state)
        if running.process.poll() is None:
            os.killpg(running.process.pid, signal.SIGKILL)
        running.process.wait(10)


def test_ctrl_c_on_the_script_stops_the_platform_and_every_child(dev: Dev) -> None:
    # the case under test: the shell starts its background commands with SIGINT ignored
    ignored = re.search(r"^SigIgn:\s*([0-9a-f]+)$", dev.output(), re.M)
    assert ignored and int(ignored.group(1), 16) & SIGINT_BIT, dev.output()
    names = " ".join(children_of(dev.state))
    assert "configurable-http-proxy" in names and "aiinfn_hub.bunshin" in names, names
    os.killpg(dev.process.pid, signal.SIGINT)  # the terminal's Ctrl-C: the script's whole group
    wait_for(lambda: ended(dev.pid), 60, "the platform to stop")
    assert "aiinfn-dev dev: stopping..." in dev.output()
    wait_for(lambda: not children_of(dev.state), 10, "every child process to end")
    assert "left running" not in dev.output()  # each part stopped its own processes


def test_sigterm_stops_every_child_even_when_the_hub_does_not_stop(dev: Dev) -> None:
    processes = platform_processes(dev.state)
    (hub,) = [pid for pid, line in processes.items() if "-m jupyterhub " in line]
    names = " ".join(processes.values())
    assert "configurable-http-proxy" in names and "aiinfn_hub.bunshin" in names, names
    os.kill(hub, signal.SIGSTOP)  # a hub that never gets to stop its proxy and services
    try:
        os.kill(dev.pid, signal.SIGTERM)
        # the hub is given its grace, then killed, then what it started is ended
        wait_for(lambda: ended(dev.pid), 90, "the platform to stop")
    finally:
        if not ended(hub):
            os.kill(hub, signal.SIGCONT)
    assert "aiinfn-dev dev: stopping..." in dev.output()
    wait_for(lambda: not children_of(dev.state), 10, "every child process to end")


def test_stopping_a_child_that_ignores_sigterm_kills_it_and_what_it_started(
    tmp_path: Path,
) -> None:
    """What the platform does with a hub that does not stop: SIGKILL after the grace, then the
    processes it started in sessions of their own (as the hub starts the proxy) are ended."""
    pid_file = tmp_path / "own-session.pid"
    stubborn = ManagedProcess(
        "stubborn",
        [
            "sh",
            "-c",
            # a SIGTERM is caught and does nothing; the child has a session of its own
            f"trap : TERM; setsid sleep 300 & echo $! > {pid_file}; while :; do sleep 1; done",
        ],
        tmp_path / "stubborn.log",
    ).start()
    own_session = 0
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 10, "the pid")
        own_session = int(pid_file.read_text())
        process = stubborn.process
        assert process is not None
        # `setsid` makes its session a moment after the shell wrote its pid
        wait_for(
            lambda: os.getsid(own_session) != os.getsid(process.pid),
            10,
            "the child to have a session of its own",
        )
        stubborn.stop(grace=1)
        assert stubborn.returncode == -signal.SIGKILL
        wait_for(lambda: ended(own_session), 10, "the child in its own session to end")
    finally:
        stubborn.stop(grace=0)
        if not own_session and pid_file.exists() and pid_file.read_text().strip():
            own_session = int(pid_file.read_text())
        if own_session and not ended(own_session):
            os.kill(own_session, signal.SIGKILL)
