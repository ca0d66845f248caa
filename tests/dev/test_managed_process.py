"""A local service's start that never gets ready says why: the process's state, where it
waits in the kernel, its CPU time and the machine's load (a stuck process and a starved one
look different), besides its log; one that exits is reported at once, with its code."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from aiinfn_hub.dev.processes import ManagedProcess, ProcessError, process_report


def test_a_start_that_never_gets_ready_reports_the_process_state(tmp_path: Path) -> None:
    process = ManagedProcess(
        "the sleeper",
        [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
        tmp_path / "sleeper.log",
    ).start()
    try:
        log = tmp_path / "sleeper.log"
        process.wait_until(lambda: "started" in log.read_text(), 120, "sleeping")
        with pytest.raises(ProcessError) as failure:
            process.wait_until(lambda: False, 1.0, "serving")
    finally:
        process.stop()
    message = str(failure.value)
    assert "the sleeper did not get to serving within 1 s" in message
    assert "state S" in message and "of CPU; load average" in message
    assert message.endswith("started\n")


def test_a_process_that_exits_is_reported_at_once_with_its_code(tmp_path: Path) -> None:
    process = ManagedProcess(
        "the quitter",
        [sys.executable, "-c", "import sys; print('bad settings'); sys.exit(3)"],
        tmp_path / "quitter.log",
    ).start()
    begun = time.monotonic()
    with pytest.raises(ProcessError, match=r"(?s)exited \(code 3\) before serving.*bad settings"):
        process.wait_until(lambda: False, 600, "serving")
    assert time.monotonic() - begun < 600


def test_the_report_of_a_gone_process_says_so() -> None:
    assert process_report(None).startswith("not started; load average ")
    # pid_max is at most 2**22: this pid cannot exist
    assert process_report(2**22 + 1).startswith(f"process {2**22 + 1} gone;")
