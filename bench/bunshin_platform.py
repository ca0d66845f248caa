"""What ``bench/bunshin.py`` runs against: a real hub with the Bunshin service (hub-managed), the
local OpenID provider and the emulated cluster, started as the integration tests start them
(``tests/integration/iam_platform.py`` and ``bunshin_helpers.py``, imported from there), plus
the two counters the benchmark reads:

- :class:`KubeCallCounter`: the emulator runs in this process, and tornado logs every request
  it answers (``tornado.access``); the counter reads that log, so it counts at the HTTP layer
  without touching the emulator.
- :func:`hub_api_counts`: the hub's own Prometheus metrics (``/hub/metrics``, opened to
  unauthenticated reads in this hub only), requests per API handler.

and :func:`cpu_seconds`, the processor time each part of the platform has used so far.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml

from aiinfn_hub.bunshin.service import owner
from aiinfn_hub.dev.emulator.resources import by_kind

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from bunshin_helpers import JOBS_NAMESPACE, User, bunshin_config, wait_for_bunshin  # noqa: E402
from iam_platform import EXAMPLES, Hub, running_platform  # noqa: E402

# signed-in users of the local provider's demo accounts, each in one project
USERS = {"alice": "alice-pw", "frank": "frank-pw", "carol": "carol-pw", "bob": "bob-pw"}
BENCH_HUB_CONFIG = """
c.JupyterHub.authenticate_prometheus = False  # the benchmark reads the request counts
c.JupyterHub.log_level = "INFO"
c.Application.log_level = "INFO"
"""
_METRIC = re.compile(
    r"^jupyterhub_request_duration_seconds_count\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.e+]+)$"
)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _platform_file(state: Path) -> Path:
    """examples/platform.yaml without storage, and a per-user job limit no benchmark reaches
    (the quota check still runs: it is part of every submission)."""
    data = yaml.safe_load((EXAMPLES / "platform.yaml").read_text())
    data.pop("storage", None)
    data["jobs"]["maxActiveJobsPerUser"] = 1_000_000
    folder = state / "config"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "platform.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Platform:
    """The running hub (with the emulator) and users with a running server and a token."""

    hub: Hub
    users: list[User]

    @property
    def jobs_url(self) -> str:
        return f"{self.hub.url}/services/bunshin/api/v1/jobs"

    def prune_jobs(self, keep: int) -> int:
        """Plays the jobs finishing and being cleaned up: each user keeps at most ``keep``
        Jobs, the oldest are deleted, straight from the emulator's store (no API call: not
        the service's). Every submission lists the user's jobs, so without this the lists
        would grow with the benchmark, beyond what the quota (``maxActiveJobsPerUser`` 20)
        and the pruning of finished jobs (``maxFinishedJobsPerUser`` 20) allow. Returns how
        many were deleted."""
        emulator = self.hub.emulator
        job_type = by_kind("Job")

        def prune() -> int:
            mine: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
            for job in emulator.store.list(job_type, JOBS_NAMESPACE):
                mine[owner(job)].append(job)
            deleted = 0
            for jobs in mine.values():
                jobs.sort(key=lambda j: int(j["metadata"]["resourceVersion"]))
                for old in jobs[: max(0, len(jobs) - keep)]:
                    emulator.store.delete(job_type, JOBS_NAMESPACE, old["metadata"]["name"])
                    deleted += 1
            return deleted

        return emulator.call(prune)


PROFILED_SERVICE = """
for _service in c.JupyterHub.services:
    if _service["name"] == "bunshin":
        _python, _m, *_rest = _service["command"]
        _service["command"] = [_python, "-m", "cProfile", "-o", {profile!r}, "-m", *_rest]
"""


@contextlib.contextmanager
def started_platform(
    state: Path, users: int, service_profile: Path | None = None
) -> Iterator[Platform]:
    """The platform, with ``users`` (at most 4) signed in, each with a server and a token;
    the service runs under cProfile, writing ``service_profile`` when it stops, if given."""
    if not 1 <= users <= len(USERS):
        raise ValueError(f"--users must be between 1 and {len(USERS)}")

    def config(emulator: Any, platform: Path) -> str:
        extra = bunshin_config(emulator, platform) + BENCH_HUB_CONFIG
        if service_profile:
            extra += PROFILED_SERVICE.format(profile=str(service_profile.resolve()))
        return extra

    with running_platform(state, platform=_platform_file, extra_config=config) as hub:
        wait_for_bunshin(hub)
        signed_in = []
        for name, password in list(USERS.items())[:users]:
            user = User(hub, name, password)
            user.start_server()
            signed_in.append(user)
        yield Platform(hub, signed_in)


def hub_api_counts(hub: Hub) -> Counter[str]:
    """Requests the hub has answered so far, by API handler (short class name)."""
    response = requests.get(f"{hub.url}/hub/metrics", timeout=30)
    response.raise_for_status()
    counts: Counter[str] = Counter()
    for line in response.text.splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        handler = labels.get("handler", "")
        if handler.startswith("jupyterhub.apihandlers."):
            counts[handler.rsplit(".", 1)[-1]] += int(float(match["value"]))
    return counts


class KubeCallCounter(logging.Handler):
    """Counts the emulator's answered requests by verb and resource (watches apart: they are
    long-lived streams, not calls of a submission)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.calls: Counter[str] = Counter()
        self.milliseconds: Counter[str] = Counter()  # the emulator's time answering them
        self.watches = 0

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 3:
            return
        summary = str(args[1])  # "GET /api/v1/namespaces/x/pods?... (127.0.0.1)"
        method, _, rest = summary.partition(" ")
        path, _, query = rest.split(" ", 1)[0].partition("?")
        if "watch=" in query:
            self.watches += 1
            return
        call = f"{method} {_resource(path)}"
        self.calls[call] += 1
        self.milliseconds[call] += float(args[2])

    def take(self) -> tuple[Counter[str], Counter[str]]:
        """The counts and times so far, and start again from zero."""
        taken = self.calls, self.milliseconds
        self.calls, self.milliseconds = Counter(), Counter()
        return taken

    @contextlib.contextmanager
    def attached(self) -> Iterator[KubeCallCounter]:
        access = logging.getLogger("tornado.access")
        level, propagate = access.level, access.propagate
        access.setLevel(logging.INFO)
        access.propagate = False  # counted, not printed
        access.addHandler(self)
        try:
            yield self
        finally:
            access.removeHandler(self)
            access.setLevel(level)
            access.propagate = propagate


def _resource(path: str) -> str:
    """``/apis/batch/v1/namespaces/bunshin/jobs/x`` → ``jobs/{name}``; a collection stays
    ``jobs``."""
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        parts = parts[i + 2 :] if len(parts) > i + 2 else ["namespaces"]
    else:
        parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if not parts:
        return path
    return parts[0] + ("/{name}" if len(parts) > 1 else "") + "".join(f"/{p}" for p in parts[2:])


def cpu_seconds(hub: Hub) -> Counter[str]:
    """Processor time (user + system) used so far by the hub, the Bunshin service, the proxy and
    this process (the emulator), by name."""
    used: Counter[str] = Counter()
    root = psutil.Process(hub.process.process.pid)
    for process in [root, *root.children(recursive=True), psutil.Process(os.getpid())]:
        try:
            times, argv = process.cpu_times(), " ".join(process.cmdline())
        except psutil.Error:
            continue
        if process.pid == os.getpid():
            name = "emulator"
        elif process.pid == root.pid:
            name = "hub"
        elif "aiinfn_hub.bunshin" in argv:
            name = "service"
        elif "configurable-http-proxy" in argv:
            name = "proxy"
        else:
            name = "other"  # the users' servers
        used[name] += times.user + times.system
    return used
