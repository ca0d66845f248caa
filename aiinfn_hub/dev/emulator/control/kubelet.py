"""The kubelet: bound pods start, run (simulated, or as local processes) and stop.

Per-pod behaviour (annotations on the pod):

- ``emulator.aiinfn.dev/outcome``: ``run`` (default: keep running), ``succeed``, ``fail``, or
  ``process`` (run the container command as a local process even when the emulator does not
  run processes for every pod);
- ``emulator.aiinfn.dev/outcome-after``: seconds before a simulated container exits (default 0);
- ``emulator.aiinfn.dev/exit-code``: the exit code of a failing simulated container (default 1).

Local processes: each pod gets its own loopback address (``127.0.x.y``) as ``podIP``, so many
servers can listen on the same port. The command runs in a new session with the container's
environment (``$(VAR)`` expanded). Images have no entrypoint here, so with no ``command`` the
``args`` are run, as an exec-style entrypoint such as ``tini --`` would. ``HOME`` and the
working folder are ``<state_dir>/pods/<namespace>_<pod>/`` (a ``workingDir`` maps to
``<that folder>/root<workingDir>``); output goes to a log file served by the ``log``
subresource. Deleting the pod sends SIGTERM to the process group, then SIGKILL when the grace
period ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..deletion import remove_if_finalized
from ..resources import NODES, PODS
from ..store import Store, WatchEvent, now_rfc3339
from .environment import container_env, expand
from .events import EventRecorder

log = logging.getLogger(__name__)
JSON = dict[str, Any]
Key = tuple[str, str]
OUTCOME = "emulator.aiinfn.dev/outcome"
OUTCOME_AFTER = "emulator.aiinfn.dev/outcome-after"
EXIT_CODE = "emulator.aiinfn.dev/exit-code"
KUBELET = "kubelet"


class AddressPool:
    """Unique loopback addresses for pods: 127.0.0.2 ... 127.0.255.254."""

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._next = 2

    def take(self) -> str:
        for _ in range(256 * 253):
            n = self._next
            self._next = self._next + 1 if self._next < 256 * 256 - 2 else 2
            hi, lo = divmod(n, 256)
            if lo in (0, 1, 255):
                continue
            address = f"127.0.{hi}.{lo}"
            if address not in self._used:
                self._used.add(address)
                return address
        raise RuntimeError("no free pod addresses left")

    def release(self, address: str | None) -> None:
        if address:
            self._used.discard(address)


@dataclass
class ContainerRun:
    name: str
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    restarts: int = 0


@dataclass
class PodRun:
    key: Key
    ip: str
    folder: Path
    containers: dict[str, ContainerRun] = field(default_factory=dict)
    stopping: bool = False
    start_task: asyncio.Task[None] | None = None


class Kubelet:
    """Runs every bound pod (all nodes are served by this one kubelet)."""

    def __init__(
        self,
        store: Store,
        events: EventRecorder,
        state_dir: Path,
        run_processes: bool,
        startup_delay: float,
    ) -> None:
        self.store = store
        self.events = events
        self.state_dir = state_dir
        self.run_processes = run_processes
        self.startup_delay = startup_delay
        self.addresses = AddressPool()
        self._runs: dict[Key, PodRun] = {}
        self._outcomes: dict[Key, tuple[str, float, int | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- hooks -----------------------------------------------------------------------------
    def set_pod_outcome(
        self,
        namespace: str,
        name: str,
        outcome: str,
        *,
        after: float = 0.0,
        exit_code: int | None = None,
    ) -> None:
        """Tell a (future or running) simulated pod to succeed, fail or keep running."""
        if outcome not in ("succeed", "fail", "run"):
            raise ValueError(f"unknown outcome {outcome!r}: use succeed, fail or run")
        key = (namespace, name)
        self._outcomes[key] = (outcome, after, exit_code)
        run = self._runs.get(key)
        if run is not None and outcome != "run":
            for container in run.containers.values():
                if container.process is None:
                    self._spawn(
                        self._simulated_exit(key, container.name, outcome, after, exit_code)
                    )

    def start(self) -> None:
        for pod in self.store.iter(PODS):
            self._consider(pod)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(
            *(self._kill_processes(run, 1.0) for run in self._runs.values()), return_exceptions=True
        )

    def on_event(self, event: WatchEvent) -> None:
        if event.rt.key != PODS.key:
            return
        key = (event.obj["metadata"].get("namespace", ""), event.obj["metadata"]["name"])
        if event.type == "DELETED":
            run = self._runs.pop(key, None)
            self._outcomes.pop(key, None)
            if run is not None:
                self._spawn(self._cleanup(run))
            return
        self._consider(event.obj)

    def _consider(self, pod: JSON) -> None:
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        node = pod.get("spec", {}).get("nodeName")
        if not node:
            return
        run = self._runs.get(key)
        if "deletionTimestamp" in pod["metadata"]:
            if run is None:
                # never started here (or already stopped): finish the deletion
                self._spawn(self._finish_deletion(key, None))
            elif not run.stopping:
                run.stopping = True
                self._spawn(self._terminate(run, pod))
            return
        if run is None and pod.get("status", {}).get("phase", "Pending") == "Pending":
            run = PodRun(key, self.addresses.take(), self.state_dir / "pods" / f"{key[0]}_{key[1]}")
            self._runs[key] = run
            run.start_task = self._spawn(self._start(run))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- start -----------------------------------------------------------------------------
    async def _start(self, run: PodRun) -> None:
        if self.startup_delay:
            await asyncio.sleep(self.startup_delay)
        pod = self.store.get(PODS, *run.key)
        if pod is None or run.stopping:
            return
        run.folder.mkdir(parents=True, exist_ok=True)
        node = self.store.get(NODES, None, pod["spec"]["nodeName"])
        host_ip = _internal_ip(node)
        annotations = pod["metadata"].get("annotations") or {}
        use_process = self.run_processes or annotations.get(OUTCOME) == "process"
        now = now_rfc3339()
        for group in ("initContainers", "containers"):
            for container in pod["spec"].get(group) or []:
                field_path = f"spec.{group}{{{container['name']}}}"
                image = container.get("image", "")
                self.events.record(
                    pod,
                    PODS,
                    "Pulled",
                    f'Container image "{image}" already present on machine',
                    component=KUBELET,
                    host=pod["spec"]["nodeName"],
                    field_path=field_path,
                )
                self.events.record(
                    pod,
                    PODS,
                    "Created",
                    f"Created container: {container['name']}",
                    component=KUBELET,
                    host=pod["spec"]["nodeName"],
                    field_path=field_path,
                )
                self.events.record(
                    pod,
                    PODS,
                    "Started",
                    f"Started container {container['name']}",
                    component=KUBELET,
                    host=pod["spec"]["nodeName"],
                    field_path=field_path,
                )

        def running(p: JSON) -> None:
            status = p.setdefault("status", {})
            status.update(
                {
                    "phase": "Running",
                    "hostIP": host_ip,
                    "hostIPs": [{"ip": host_ip}],
                    "podIP": run.ip,
                    "podIPs": [{"ip": run.ip}],
                    "startTime": status.get("startTime", now),
                }
            )
            for ctype in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ):
                _condition(status, ctype, "True")
            if p["spec"].get("initContainers"):
                status["initContainerStatuses"] = [
                    _container_status(
                        c,
                        ready=True,
                        state={
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": now,
                                "finishedAt": now,
                                "containerID": _container_id(run, c["name"]),
                            }
                        },
                        run=run,
                    )
                    for c in p["spec"]["initContainers"]
                ]
            status["containerStatuses"] = [
                _container_status(c, ready=True, state={"running": {"startedAt": now}}, run=run)
                for c in p["spec"].get("containers") or []
            ]

        self._write_status(run.key, running)
        outcome = self._outcomes.get(run.key)
        if outcome is None and annotations.get(OUTCOME) in ("succeed", "fail"):
            exit_code = annotations.get(EXIT_CODE)
            outcome = (
                annotations[OUTCOME],
                float(annotations.get(OUTCOME_AFTER, 0) or 0),
                int(exit_code) if exit_code else None,
            )
        for container in pod["spec"].get("containers") or []:
            crun = ContainerRun(container["name"])
            run.containers[crun.name] = crun
            if use_process:
                crun.task = self._spawn(self._run_process(run, crun.name))
            else:
                self.store.logs[(*run.key, crun.name)] = (
                    f"emulated container {crun.name} ({container.get('image', '')}) started\n"
                )
                if outcome is not None and outcome[0] != "run":
                    crun.task = self._spawn(self._simulated_exit(run.key, crun.name, *outcome))

    async def _simulated_exit(
        self, key: Key, name: str, outcome: str, after: float, exit_code: int | None
    ) -> None:
        if after:
            await asyncio.sleep(after)
        code = 0 if outcome == "succeed" else (exit_code if exit_code is not None else 1)
        if outcome == "succeed" and exit_code is not None:
            code = exit_code
        log_key = (*key, name)
        current = self.store.logs.get(log_key)
        if isinstance(current, str):
            self.store.logs[log_key] = current + f"emulated container {name} exited with {code}\n"
        await self._container_exited(key, name, code)

    # -- local processes -------------------------------------------------------------------
    async def _run_process(self, run: PodRun, name: str) -> None:
        log_path = run.folder / f"{name}.log"
        self.store.logs[(*run.key, name)] = log_path
        while True:
            pod = self.store.get(PODS, *run.key)
            if pod is None or run.stopping:
                return
            container = next(c for c in pod["spec"]["containers"] if c["name"] == name)
            env = container_env(self.store, pod, container)
            argv = [
                expand(a, env)
                for a in (container.get("command") or []) + (container.get("args") or [])
            ]
            if not argv:
                with log_path.open("a") as fh:
                    fh.write(
                        f"emulator: container {name} has neither command nor args; there "
                        "are no image entrypoints here, so set one explicitly\n"
                    )
                self.events.record(
                    pod,
                    PODS,
                    "Failed",
                    "Error: container has neither command nor args "
                    "(the emulator has no image entrypoints)",
                    type_="Warning",
                    component=KUBELET,
                    host=pod["spec"]["nodeName"],
                    field_path=f"spec.containers{{{name}}}",
                )
                code = 128
            else:
                code = await self._exec(run, name, container, argv, env, log_path)
            if run.stopping:
                return
            restart = await self._container_exited(run.key, name, code)
            if not restart:
                return

    async def _exec(
        self,
        run: PodRun,
        name: str,
        container: JSON,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
    ) -> int:
        pod = self.store.get(PODS, *run.key) or {}
        cwd = run.folder
        if container.get("workingDir"):
            cwd = run.folder / "root" / str(container["workingDir"]).lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        full_env = {
            "PATH": path,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": str(run.folder),
            "HOSTNAME": pod.get("spec", {}).get("hostname") or run.key[1],
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            **env,
        }
        crun = run.containers[name]
        with log_path.open("ab") as out:
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=cwd,
                    env=full_env,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                out.write(f"emulator: cannot start {argv[0]!r}: {exc}\n".encode())
                return 127
            crun.process = process
            return await process.wait()

    async def _kill_processes(self, run: PodRun, grace: float) -> None:
        processes = [
            c.process
            for c in run.containers.values()
            if c.process is not None and c.process.returncode is None
        ]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        if not processes:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), grace)
        except TimeoutError:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in processes))

    # -- exits and stops -------------------------------------------------------------------
    async def _container_exited(self, key: Key, name: str, code: int) -> bool:
        """Record a container's exit; returns whether the kubelet restarts it."""
        pod = self.store.get(PODS, *key)
        run = self._runs.get(key)
        if pod is None or run is None or run.stopping:
            return False
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        now = now_rfc3339()
        crun = run.containers[name]
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": now,
            "finishedAt": now,
            "containerID": _container_id(run, name),
        }
        if restart:
            crun.restarts += 1
            backoff = min(10.0 * 2 ** (crun.restarts - 1), 300.0) / 100  # short, for tests
            self.events.record(
                pod,
                PODS,
                "BackOff",
                f"Back-off restarting failed container "
                f"{name} in pod {key[1]}_{key[0]}({pod['metadata']['uid']})",
                type_="Warning",
                component=KUBELET,
                host=pod["spec"]["nodeName"],
                field_path=f"spec.containers{{{name}}}",
            )

            def waiting(p: JSON) -> None:
                for cs in p["status"].get("containerStatuses") or []:
                    if cs["name"] == name:
                        cs.update(
                            {
                                "ready": False,
                                "started": False,
                                "restartCount": crun.restarts,
                                "state": {
                                    "waiting": {
                                        "reason": "CrashLoopBackOff",
                                        "message": f"back-off restarting failed container {name}",
                                    }
                                },
                                "lastState": {"terminated": terminated},
                            }
                        )
                _condition(p["status"], "Ready", "False", "ContainersNotReady")
                _condition(p["status"], "ContainersReady", "False", "ContainersNotReady")

            self._write_status(key, waiting)
            await asyncio.sleep(backoff)

            def running_again(p: JSON) -> None:
                for cs in p["status"].get("containerStatuses") or []:
                    if cs["name"] == name:
                        cs.update(
                            {
                                "ready": True,
                                "started": True,
                                "state": {"running": {"startedAt": now_rfc3339()}},
                            }
                        )
                if all(cs.get("ready") for cs in p["status"].get("containerStatuses") or []):
                    _condition(p["status"], "Ready", "True")
                    _condition(p["status"], "ContainersReady", "True")

            if key in self._runs and not run.stopping:
                self._write_status(key, running_again)
                if crun.process is None and not (self.run_processes or _is_process_pod(pod)):
                    outcome = self._outcomes.get(key)
                    if outcome is not None and outcome[0] != "run":
                        crun.task = self._spawn(self._simulated_exit(key, name, *outcome))
            return True

        def finished(p: JSON) -> None:
            statuses = p["status"].get("containerStatuses") or []
            for cs in statuses:
                if cs["name"] == name:
                    cs.update(
                        {"ready": False, "started": False, "state": {"terminated": terminated}}
                    )
            _condition(p["status"], "Ready", "False", "PodCompleted")
            _condition(p["status"], "ContainersReady", "False", "PodCompleted")
            done = [cs["state"]["terminated"] for cs in statuses if "terminated" in cs["state"]]
            if len(done) == len(statuses):
                failed = any(t["exitCode"] != 0 for t in done)
                p["status"]["phase"] = "Failed" if failed else "Succeeded"
                _condition(p["status"], "PodReadyToStartContainers", "False")

        self._write_status(key, finished)
        current = self.store.get(PODS, *key)
        if current is not None and current["status"].get("phase") in ("Succeeded", "Failed"):
            self.addresses.release(run.ip)
        return False

    async def _terminate(self, run: PodRun, pod: JSON) -> None:
        grace = float(
            pod["metadata"].get(
                "deletionGracePeriodSeconds", pod["spec"].get("terminationGracePeriodSeconds", 30)
            )
        )
        if run.start_task is not None and not run.start_task.done():
            await asyncio.gather(run.start_task, return_exceptions=True)
        for name in run.containers:
            self.events.record(
                pod,
                PODS,
                "Killing",
                f"Stopping container {name}",
                component=KUBELET,
                host=pod["spec"]["nodeName"],
                field_path=f"spec.containers{{{name}}}",
            )
        await self._kill_processes(run, grace)
        for crun in run.containers.values():
            if crun.task is not None and not crun.task.done():
                crun.task.cancel()
        await self._finish_deletion(run.key, run)

    async def _finish_deletion(self, key: Key, run: PodRun | None) -> None:
        pod = self.store.get(PODS, *key)
        if pod is None:
            return
        now = now_rfc3339()

        def stopped(p: JSON) -> None:
            status = p.setdefault("status", {})
            codes = []
            for cs in status.get("containerStatuses") or []:
                if "terminated" not in cs.get("state", {}):
                    cs["state"] = {
                        "terminated": {
                            "exitCode": 137
                            if run
                            and run.containers.get(cs["name"])
                            and run.containers[cs["name"]].process
                            else 0,
                            "reason": "Completed",
                            "startedAt": now,
                            "finishedAt": now,
                        }
                    }
                cs["ready"] = False
                cs["started"] = False
                codes.append(cs["state"]["terminated"]["exitCode"])
            if status.get("phase") not in ("Succeeded", "Failed"):
                status["phase"] = "Failed" if any(codes) else "Succeeded"

        if pod["metadata"].get("finalizers"):
            self._write_status(key, stopped)
            return
        self.store.delete(PODS, *key)

    async def _cleanup(self, run: PodRun) -> None:
        run.stopping = True
        await self._kill_processes(run, 0.5)
        for crun in run.containers.values():
            if crun.task is not None and not crun.task.done():
                crun.task.cancel()
            self.store.logs.pop((*run.key, crun.name), None)
        self.addresses.release(run.ip)
        shutil.rmtree(run.folder, ignore_errors=True)

    def _write_status(self, key: Key, mutate: Any) -> None:
        pod = self.store.get(PODS, *key)
        if pod is None:
            return
        new = copy.deepcopy(pod)
        new.setdefault("status", {})
        mutate(new)
        updated = self.store.update(PODS, new)
        remove_if_finalized(self.store, PODS, updated)


def _is_process_pod(pod: JSON) -> bool:
    return (pod["metadata"].get("annotations") or {}).get(OUTCOME) == "process"


def _internal_ip(node: JSON | None) -> str:
    for address in (node or {}).get("status", {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address["address"])
    return "127.1.0.254"


def _container_id(run: PodRun, name: str) -> str:
    digest = hashlib.sha256(f"{run.key}{name}{run.ip}".encode()).hexdigest()
    return f"emulated://{digest}"


def _container_status(container: JSON, *, ready: bool, state: JSON, run: PodRun) -> JSON:
    image = container.get("image", "")
    digest = hashlib.sha256(image.encode()).hexdigest()
    return {
        "name": container["name"],
        "image": image,
        "imageID": f"{image.split('@')[0].split(':')[0]}@sha256:{digest}",
        "containerID": _container_id(run, container["name"]),
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }


def _condition(status: JSON, kind: str, value: str, reason: str | None = None) -> None:
    now = now_rfc3339()
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond["type"] == kind:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now
            cond["status"] = value
            if reason:
                cond["reason"] = reason
            else:
                cond.pop("reason", None)
            return
    new: JSON = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": now}
    if reason:
        new["reason"] = reason
    conditions.append(new)
