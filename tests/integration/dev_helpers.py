"""``aiinfn-dev dev`` run as a user runs it, for the tests: start, read its output, Ctrl-C."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from iam_platform import provider_sign_in, wait_for

BANNER_END = "Ctrl-C stops everything."
# what `bash -c 'scripts/platform &'` does: a shell without job control starts a background
# command with SIGINT (and SIGQUIT) ignored; the first line shows a background command's
# ignored signals, the second the platform's pid
BACKGROUND_SHELL = 'grep "^SigIgn:" /proc/self/status & wait $!; "$@" & echo "dev pid $!"; wait $!'


class Dev:
    """``aiinfn-dev dev`` in a session of its own; with ``in_background_shell`` started as a
    script's background command (``self.process`` is then the shell, ``self.pid`` the
    platform's process)."""

    def __init__(
        self,
        state: Path,
        port: int,
        *,
        in_background_shell: bool = False,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
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
            *args,
        ]
        if in_background_shell:
            argv = ["bash", "-c", BACKGROUND_SHELL, "bash", *argv]
        self.process = subprocess.Popen(
            argv,
            stdout=self.out.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else {**os.environ, **env},
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

    def banner_line(self, label: str) -> str:
        """The banner's line ``label:  ...``, without its label."""
        found = re.search(rf"^{label}:\s+(.*)$", self.output(), re.M)
        assert found, self.output()
        return found.group(1)

    @property
    def pod_gateway(self) -> str | None:
        """The pods' gateway the banner names when they have network namespaces, else None."""
        found = re.search(r"listens on (100\.\d+\.0\.1)$", self.banner_line("pods"))
        return found.group(1) if found else None

    def kubectl(self, *args: str) -> str:
        """``kubectl ARGS`` on the platform's cluster; its output (it must succeed)."""
        done = subprocess.run(
            ["kubectl", *args],
            env={**os.environ, "KUBECONFIG": str(self.state / "emulator" / "kubeconfig")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def start_server(self, user: str, password: str) -> requests.Session:
        """Sign ``user`` in, start a CPU server with the form (unless one runs) and wait for
        its JupyterLab; the signed-in session."""
        session, page = provider_sign_in(self.url, user, password)
        if page.status_code == 200 and f"/user/{user}/" in page.url:
            return session  # the server runs already: the hub sent the user to it
        assert page.status_code == 200 and "/hub/spawn" in page.url, page.text[:500]
        form = {
            "image": "base",
            "cpu": "1",
            "memory": "4Gi",
            "accelerator": "none",
            "scratch": "1Gi",
            "_xsrf": session.cookies.get("_xsrf") or "",
        }
        # the hub's answer only: following it would also take the server's first OAuth step
        # with the hub, which a busy machine may make fail once (ready() retries it)
        spawned = session.post(
            f"{self.url}/hub/spawn", data=form, timeout=60, allow_redirects=False
        )
        where = spawned.headers.get("Location", "")
        assert spawned.status_code == 302 and where.endswith(
            (f"/hub/spawn-pending/{user}", f"/user/{user}/")
        ), f"{spawned.status_code} {where} {spawned.text[:500]}\n{self.hub_log_tail()}"

        def ready() -> bool:
            # the first visit goes through the server's own OAuth with the hub, like a browser
            lab = session.get(f"{self.url}/user/{user}/lab", timeout=30)
            return lab.status_code == 200 and "JupyterLab" in lab.text

        wait_for(ready, 120, f"{user}'s JupyterLab")
        return session

    def server_pod(self, user: str) -> dict[str, Any]:
        """The pod of ``user``'s server, as ``kubectl get -o json`` shows it."""
        return dict(
            json.loads(
                self.kubectl("get", "pod", "-n", "jupyterhub", f"jupyter-{user}", "-o", "json")
            )
        )

    def bucket_readme(self, session: requests.Session, user: str) -> str:
        """The README.txt of ``user``'s bucket as their server shows it, once the sidecar in
        their pod has mounted it (STS and S3 answered it from there)."""
        readme = f"{self.url}/user/{user}/api/contents/buckets/{user}/README.txt"

        def mounted() -> dict[str, Any] | None:
            answer = session.get(readme, timeout=10)
            return answer.json() if answer.status_code == 200 else None

        found = wait_for(mounted, 30, f"{user}'s bucket in their server\n{self.hub_log_tail()}")
        return str(found["content"])

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


def in_network(ip: str, gateway: str) -> bool:
    """Whether ``ip`` is in the /16 of the pods' ``gateway``."""
    return ipaddress.ip_address(ip) in ipaddress.ip_network(f"{gateway}/16", strict=False)


@contextlib.contextmanager
def started_dev(
    state: Path, port: int, *, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[Dev]:
    """``aiinfn-dev dev`` up (its banner printed) for the block; Ctrl-C afterwards."""
    running = Dev(state, port, args=args, env=env)
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
