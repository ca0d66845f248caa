"""The life of one pod on a node, like the kubelet's pod worker.

Start: the pod gets its network (an IP and, for local processes where the kubelet's pod
network makes them, a network namespace: see ``pod_network``; a failure is reported as
FailedCreatePodSandBox and retried with back-off, as after a CNI failure) and its init
containers run one after the other, then its app containers start (with the
Pulling/Pulled/Created/Started events). Each app container then runs until its process exits
or, when simulated, until its outcome says so; ``restartPolicy`` decides whether it restarts
(with a short CrashLoopBackOff). Deletion: containers get SIGTERM,
SIGKILL after the grace period, the pod gets a terminal phase and is removed from the store
unless finalizers hold it.

Sidecars (init containers with ``restartPolicy: Always``, KEP-753): the next init container
starts once the sidecar runs and its startupProbe has passed; it keeps running beside the app
containers and is restarted whenever it exits, whatever the pod's restartPolicy. Once the app
containers have stopped for good, the sidecars get SIGTERM in reverse order (each once the
later ones are gone), SIGKILL at the end of the grace period; on deletion the app containers
stop first. The phase follows the app containers only.

Probes (local processes only): a startupProbe keeps ``started`` false until it passes and
kills the container when it has not passed within initialDelaySeconds + periodSeconds x
failureThreshold; a readinessProbe then makes the container ready once it passes. Probes are
tried every 0.1 s, not every periodSeconds, so tests stay fast.

Local processes run in ``<state_dir>/pods/<namespace>_<pod>/`` (HOME and working directory);
a container ``workingDir`` of ``/x/y`` maps to ``<that folder>/root/x/y``. Their output goes to
``<state_dir>/pods/<namespace>_<pod>.logs/<container>.log``. Their volumes are host folders
(see ``volumes``): mountPaths in the command line, environment and ``workingDir`` are rewritten
to those folders, and secret/configMap volume files follow changes of their sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..resources import CONFIGMAPS, PODS, SECRETS
from ..store import JSON, Store, WatchEvent, now_rfc3339
from .environment import ConfigError, command_line, container_environment
from .events import EventRecorder
from .outcomes import Outcome
from .pod_network import PodNetwork, PodNetworkError, PodSandbox
from .podstatus import ContainerState, container_id, pod_conditions, pod_phase, terminated_state
from .processes import ExecContext, LocalProcess, StartError, probe_once
from .volumes import (
    Mount,
    VolumeError,
    container_mounts,
    prepare_mounts,
    reset_pod_volumes,
    set_up_volume,
    translate,
    uses_downward_api,
    volume_files,
    volume_folder,
    volume_sources,
    working_folder,
    write_files,
)
from .volumes import pod_folder as pod_folder

log = logging.getLogger(__name__)
COMPONENT = "kubelet"
_KILLED_EXIT_CODE = 128 + signal.SIGTERM
_RESTART_BACKOFF = (0.1, 5.0)
_CONFIG_RETRY = (0.5, 10.0)
_PROBE_INTERVAL = 0.1
_SANDBOX_RETRY = (0.5, 10.0)


@dataclass
class NodeContext:
    """What every pod worker shares: the store, events, the pod network and the node's facts."""

    store: Store
    events: EventRecorder
    network: PodNetwork
    state_dir: Path
    startup_delay: float
    pulled_images: set[tuple[str, str]] = field(default_factory=set)


def log_folder(state_dir: Path, namespace: str, name: str) -> Path:
    return state_dir / "pods" / f"{namespace}_{name}.logs"


def go_duration(seconds: float) -> str:
    """A duration the way Go prints one in event messages (``0s``, ``250ms``, ``1.5s``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.6f}".rstrip("0").rstrip(".") + "ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.6f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def node_internal_ip(node: JSON) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address["address"])
    return "127.0.0.1"


class PodWorker:
    """Runs one pod (by uid) from binding to removal."""

    def __init__(
        self,
        ctx: NodeContext,
        pod: JSON,
        node: JSON,
        *,
        local: bool,
        outcome: Outcome,
        on_done: Callable[[PodWorker], None],
    ) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        self.ctx = ctx
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.node_name: str = node["metadata"]["name"]
        self.local = local
        self.outcome = outcome
        self._on_done = on_done
        self._host_ip = node_internal_ip(node)
        self._allocatable = dict((node.get("status") or {}).get("allocatable") or {})
        self._restart_policy = spec.get("restartPolicy", "Always")
        self._specs = {c["name"]: c for c in spec.get("initContainers") or []}
        self._specs.update({c["name"]: c for c in spec.get("containers") or []})
        self.init = [
            ContainerState(
                c["name"], c.get("image", ""), True, sidecar=c.get("restartPolicy") == "Always"
            )
            for c in spec.get("initContainers") or []
        ]
        self.app = [
            ContainerState(c["name"], c.get("image", "")) for c in spec.get("containers") or []
        ]
        for waiting in self.app if self.init else []:
            waiting.state = {"waiting": {"reason": "PodInitializing"}}
        self.ip: str | None = None
        self._sandbox: PodSandbox | None = None
        self._start_time = now_rfc3339()
        self._init_failed = False
        self._final_phase: str | None = None
        self._exits: dict[str, asyncio.Future[int]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._processes: dict[str, LocalProcess] = {}
        self._started_at: dict[str, str] = {}
        self._helpers: set[asyncio.Task[None]] = set()
        self._sidecar_tasks: dict[str, asyncio.Task[None]] = {}
        self._sidecars_end = asyncio.Event()
        self._exec_contexts: dict[str, ExecContext] = {}
        self.stopping = False
        self._stop_event = asyncio.Event()
        self._deadline = float("inf")
        self._deadline_changed = asyncio.Event()
        self.removed = False
        self.done = False
        self._task: asyncio.Task[None] | None = None
        # local mode: the pod's volumes set up so far (name -> host folder), and what keeps
        # the secret/configMap/downwardAPI ones in sync
        self._volume_folders: dict[str, Path] = {}
        self._volume_refs: set[tuple[str, str]] = set()
        self._volume_downward = False
        self._volumes_changed = asyncio.Event()
        self._volume_sync: asyncio.Task[None] | None = None

    # -- control from the kubelet ----------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"pod {self.namespace}/{self.name}"
        )

    def request_stop(self, grace: float) -> None:
        """Stop the containers: SIGTERM now, SIGKILL once ``grace`` seconds have passed."""
        deadline = time.monotonic() + max(grace, 0.0)
        if deadline < self._deadline:
            self._deadline = deadline
            self._deadline_changed.set()
        if not self.stopping:
            self.stopping = True
            self._stop_event.set()

    def object_removed(self) -> None:
        """The pod is gone from the store (forced or finished deletion): stop, write nothing."""
        self.removed = True
        self.request_stop(1.0)

    def apply_outcome(self, outcome: Outcome) -> None:
        """A new outcome for the simulated containers, counted from now for running ones."""
        self.outcome = outcome
        for state in self.app:
            if state.running and state.name not in self._processes:
                self._schedule_outcome(state.name)

    def pids(self) -> list[int]:
        """PIDs of the container processes still running."""
        return [p.pid for p in self._processes.values() if p.alive]

    def running_process(self, name: str) -> tuple[LocalProcess, ExecContext] | None:
        """Container ``name``'s live process and how it was started (for exec and attach)."""
        process = self._processes.get(name)
        context = self._exec_contexts.get(name)
        if process is None or not process.alive or context is None:
            return None
        return process, context

    async def wait_done(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # -- the pod's life ------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            self._publish()
            main = self._spawn(self._run_containers())
            stop = asyncio.ensure_future(self._stop_event.wait())
            await asyncio.wait([main, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            error = main.exception() if main.done() and not main.cancelled() else None
            if error is not None:
                raise error
            if self.stopping:
                await self._terminate()
            await self._finish()
        except asyncio.CancelledError:
            self._kill_all(signal.SIGKILL)
            raise
        except Exception:
            log.exception("pod worker of %s/%s failed", self.namespace, self.name)
            self._kill_all(signal.SIGKILL)
            await self._finish()
        finally:
            self._stop_volume_sync()

    async def _run_containers(self) -> None:
        """Sandbox, init containers, then the app containers until all have stopped for good,
        then the sidecars."""
        if await self._sleep(0) or not await self._create_sandbox():
            return
        if self.local:
            folder = pod_folder(self.ctx.state_dir, self.namespace, self.name)
            folder.mkdir(parents=True, exist_ok=True)
            reset_pod_volumes(folder)
        self._publish()
        if await self._run_init_containers():
            loops = [self._spawn(self._container_loop(state)) for state in self.app]
            await asyncio.gather(*loops)
        if not self.stopping:
            await self._stop_sidecars()

    async def _create_sandbox(self) -> bool:
        """The pod's network, retried with back-off while it cannot be made (the kubelet
        after a CNI failure: the pod stays Pending, its containers ContainerCreating); False
        when the pod is stopped first."""
        delay = _SANDBOX_RETRY[0]
        while True:
            try:
                sandbox = await self.ctx.network.set_up(self.uid, isolated=self.local)
            except PodNetworkError as exc:
                sandbox_id = hashlib.sha256(self.uid.encode()).hexdigest()
                self._record_pod(
                    "FailedCreatePodSandBox",
                    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to "
                    f'setup network for sandbox "{sandbox_id}": plugin type="bridge" '
                    f'name="aiinfn" failed (add): {exc}',
                    warning=True,
                )
            else:
                self._sandbox = sandbox
                self.ip = sandbox.ip
                return True
            if await self._sleep(delay):
                return False
            delay = min(delay * 2, _SANDBOX_RETRY[1])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)
        return task

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        """Sleep unless a stop is requested (or ``wake`` is set) first; True if so."""
        if self.stopping or (wake is not None and wake.is_set()):
            return True
        if seconds <= 0:
            await asyncio.sleep(0)
            return self.stopping
        waits = [asyncio.ensure_future(self._stop_event.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self.stopping or (wake is not None and wake.is_set())

    async def _run_init_containers(self) -> bool:
        """Run init containers in order; False when the pod must not go on."""
        for state in self.init:
            if state.sidecar:
                if not await self._start_sidecar(state):
                    return False
                continue
            backoff = _RESTART_BACKOFF[0]
            while True:
                code = await self._run_once(state)
                if code is None or self.stopping:
                    return False
                if code == 0:
                    break
                if self._restart_policy == "Never":
                    self._init_failed = True
                    self._publish()
                    return False
                if await self._back_off(state, backoff):
                    return False
                backoff = min(backoff * 2, _RESTART_BACKOFF[1])
        for state in self.app:
            state.state = {"waiting": {"reason": "ContainerCreating"}}
        return True

    async def _start_sidecar(self, state: ContainerState) -> bool:
        """Start a sidecar's restart loop; True once it has started (startupProbe passed)."""
        started = asyncio.Event()
        task = self._spawn(self._sidecar_loop(state, started))
        self._sidecar_tasks[state.name] = task
        waits = [
            asyncio.ensure_future(started.wait()),
            asyncio.ensure_future(self._stop_event.wait()),
        ]
        await asyncio.wait([*waits, task], return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        return started.is_set() and not self.stopping

    async def _sidecar_loop(self, state: ContainerState, started: asyncio.Event) -> None:
        """Keep a sidecar running: restarted (with back-off) after every exit, whatever the
        pod's restartPolicy, until the app containers are done or the pod stops."""
        backoff = _RESTART_BACKOFF[0]
        while not (self.stopping or self._sidecars_end.is_set()):
            code = await self._run_once(state, on_started=started.set)
            if code is None or self.stopping or self._sidecars_end.is_set():
                return
            if await self._back_off(state, backoff, wake=self._sidecars_end):
                return
            backoff = min(backoff * 2, _RESTART_BACKOFF[1])

    async def _stop_sidecars(self) -> None:
        """The app containers are done: SIGTERM the sidecars in reverse order, each once the
        later ones have exited, SIGKILL what is left at the end of the grace period."""
        if not self._sidecar_tasks:
            return
        self._sidecars_end.set()
        self._deadline = min(self._deadline, time.monotonic() + self._grace_period())
        sidecars = [s for s in self.init if s.name in self._sidecar_tasks]
        for state in reversed(sidecars):
            if state.running:
                self._record("Killing", f"Stopping container {state.name}", state)
                self._signal(state, signal.SIGTERM)
            if not await self._until_deadline([self._sidecar_tasks[state.name]]):
                break
            if self.stopping:
                return  # deleted meanwhile: _terminate takes over
        left = [t for t in self._sidecar_tasks.values() if not t.done()]
        if left and not self.stopping:
            for state in sidecars:
                self._signal(state, signal.SIGKILL)
            _, stuck = await asyncio.wait(left, timeout=1)
            for task in stuck:  # never got a process (e.g. waiting for a Secret)
                task.cancel()
        self._publish()

    def _grace_period(self) -> float:
        pod = self._current() or {}
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(grace) if isinstance(grace, int | float) else 30.0

    async def _container_loop(self, state: ContainerState) -> None:
        backoff = _RESTART_BACKOFF[0]
        while not self.stopping:
            code = await self._run_once(state)
            if code is None or self.stopping:
                return
            if not self._restarts(code):
                self._publish()
                return
            if await self._back_off(state, backoff):
                return
            backoff = min(backoff * 2, _RESTART_BACKOFF[1])

    def _restarts(self, exit_code: int) -> bool:
        if self._restart_policy == "Always":
            return True
        return self._restart_policy == "OnFailure" and exit_code != 0

    async def _back_off(
        self, state: ContainerState, delay: float, wake: asyncio.Event | None = None
    ) -> bool:
        """CrashLoopBackOff before a restart; True when the pod is stopping (or ``wake`` is
        set) instead."""
        state.last_state = state.state
        message = (
            f"back-off {go_duration(delay)} restarting failed container={state.name} "
            f"pod={self.name}_{self.namespace}({self.uid})"
        )
        state.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        state.ready = state.started = False
        self._record(
            "BackOff",
            f"Back-off restarting failed container {state.name} in pod "
            f"{self.name}_{self.namespace}({self.uid})",
            state,
            warning=True,
        )
        self._publish()
        if await self._sleep(delay, wake):
            return True
        state.restart_count += 1
        return False

    async def _run_once(
        self, state: ContainerState, on_started: Callable[[], None] | None = None
    ) -> int | None:
        """Start a container and wait for it to end; its exit code, or None if never started.
        ``on_started`` is called once it counts as started (startupProbe passed)."""
        spec = self._specs[state.name]
        config = await self._environment(state, spec)
        if config is None:
            return None
        env, mounts = config
        await self._pull(state, spec)
        if self.stopping:
            return None
        cid = container_id(self.uid, state.name, state.restart_count)
        state.container_id = cid
        self._record("Created", f"Created container: {state.name}", state)
        started_at = now_rfc3339()
        exit_future: asyncio.Future[int]
        if self.local:
            try:
                process = await self._start_process(state, spec, env, mounts)
            except StartError as exc:
                state.state = terminated_state(128, None, now_rfc3339(), cid, str(exc))
                state.state["terminated"]["reason"] = "StartError"
                self._record("Failed", f"Error: {exc}", state, warning=True)
                self._publish()
                return 128
            self._processes[state.name] = process
            exit_future = asyncio.ensure_future(process.wait())
        else:
            exit_future = asyncio.get_running_loop().create_future()
            self._append_log(state.name, f"{started_at} simulated container {state.name} started\n")
        self._exits[state.name] = exit_future
        self._started_at[state.name] = started_at
        state.state = {"running": {"startedAt": started_at}}
        probed = self.local and (state.sidecar or not state.init)
        startup = spec.get("startupProbe") if probed else None
        readiness = spec.get("readinessProbe") if probed else None
        state.started = startup is None
        state.ready = state.started and readiness is None and (state.sidecar or not state.init)
        self._record("Started", f"Started container {state.name}", state)
        self._publish()
        if startup is not None or readiness is not None:
            self._spawn(self._watch_probes(state, spec, cid, on_started))
        elif on_started is not None:
            on_started()
        if state.sidecar and self._sidecars_end.is_set():
            self._signal(state, signal.SIGTERM)  # started while the pod was ending
        if state.init and not state.sidecar and not self.local:
            exit_future.set_result(0)
        elif not self.local and not state.sidecar:
            self._schedule_outcome(state.name)
        code = await exit_future
        self._processes.pop(state.name, None)
        timer = self._timers.pop(state.name, None)
        if timer is not None:
            timer.cancel()
        state.state = terminated_state(code, started_at, now_rfc3339(), cid)
        # the kubelet reports an init container that exited 0 as ready
        state.ready = state.init and not state.sidecar and code == 0
        state.started = False
        if not self.local:
            self._append_log(state.name, f"{now_rfc3339()} exited with code {code}\n")
        return code

    async def _environment(
        self, state: ContainerState, spec: JSON
    ) -> tuple[dict[str, str], list[Mount]] | None:
        """The container's variables and (local mode) mounts, retried while a Secret or
        ConfigMap is missing or a volume mount cannot be prepared."""
        delay = _CONFIG_RETRY[0]
        while True:
            pod = self._current()
            if pod is None:
                return None
            try:
                env = container_environment(pod, spec, self._lookup, self._allocatable)
                mounts = self._mount_volumes(pod, spec, env) if self.local else []
                return env, mounts
            except ConfigError as exc:
                state.state = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}
                }
                self._record("Failed", f"Error: {exc}", state, warning=True)
                self._publish()
            if await self._sleep(delay):
                return None
            delay = min(delay * 2, _CONFIG_RETRY[1])

    def _lookup(self, kind: str, namespace: str, name: str) -> JSON | None:
        rt = SECRETS if kind == "Secret" else CONFIGMAPS
        return self.ctx.store.get(rt, namespace, name)

    # -- volumes of local processes --------------------------------------------------------
    def _mount_volumes(self, pod: JSON, spec: JSON, env: dict[str, str]) -> list[Mount]:
        """Set up the pod's volumes not set up yet, then this container's mounts (subPaths,
        nested mounts); VolumeError (a ConfigError) when that is not possible."""
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = str(volume.get("name", ""))
            if name in self._volume_folders:
                continue
            try:
                self._volume_folders[name] = set_up_volume(
                    pod, volume, self.ctx.state_dir, self._lookup, self._allocatable
                )
            except OSError as exc:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {exc}') from exc
        self._start_volume_sync(pod)
        mounts = container_mounts(pod, spec, env, self.ctx.state_dir)
        try:
            prepare_mounts(mounts, str(spec.get("name", "")))
        except OSError as exc:
            raise VolumeError(
                f'failed to prepare volume mounts of container "{spec.get("name", "")}": {exc}'
            ) from exc
        return mounts

    def _start_volume_sync(self, pod: JSON) -> None:
        """Follow the Secrets and ConfigMaps (and, for downwardAPI, the pod) volumes show."""
        if self._volume_sync is not None:
            return
        self._volume_refs = volume_sources(pod)
        self._volume_downward = uses_downward_api(pod)
        if not self._volume_refs and not self._volume_downward:
            return
        self.ctx.store.add_listener(self._volume_source_changed)
        self._volume_sync = asyncio.get_running_loop().create_task(
            self._sync_volumes(), name=f"volumes of {self.namespace}/{self.name}"
        )

    def _stop_volume_sync(self) -> None:
        if self._volume_sync is not None:
            self.ctx.store.remove_listener(self._volume_source_changed)
            self._volume_sync.cancel()

    def _volume_source_changed(self, event: WatchEvent) -> None:
        meta = event.obj.get("metadata") or {}
        if event.rt.key == PODS.key:
            old = (event.old or {}).get("metadata") or {}
            relevant = (
                self._volume_downward
                and meta.get("uid") == self.uid
                and any(meta.get(k) != old.get(k) for k in ("labels", "annotations"))
            )
        elif event.rt.key in (SECRETS.key, CONFIGMAPS.key):
            kind = "Secret" if event.rt.key == SECRETS.key else "ConfigMap"
            relevant = (
                meta.get("namespace") == self.namespace
                and (kind, meta.get("name")) in self._volume_refs
            )
        else:
            relevant = False
        if relevant:
            self._volumes_changed.set()

    async def _sync_volumes(self) -> None:
        """Rewrite the files of secret/configMap/downwardAPI/projected volumes on changes,
        like the kubelet's periodic sync (a source gone keeps the files as they were)."""
        while True:
            await self._volumes_changed.wait()
            self._volumes_changed.clear()
            pod = self._current()
            if pod is None:
                return
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                if str(volume.get("name", "")) not in self._volume_folders:
                    continue
                try:
                    files = volume_files(pod, volume, self._lookup, self._allocatable)
                    if files is not None:
                        folder = volume_folder(pod, volume, self.ctx.state_dir)
                        write_files(folder, files)
                except (ConfigError, OSError) as exc:
                    log.warning(
                        "volume %s of %s/%s not updated: %s",
                        volume.get("name"),
                        self.namespace,
                        self.name,
                        exc,
                    )

    async def _pull(self, state: ContainerState, spec: JSON) -> None:
        image = spec.get("image", "")
        policy = spec.get("imagePullPolicy", "IfNotPresent")
        cached = (self.node_name, image) in self.ctx.pulled_images
        if cached and policy != "Always":
            self._record("Pulled", f'Container image "{image}" already present on machine', state)
            return
        self._record("Pulling", f'Pulling image "{image}"', state)
        began = time.monotonic()
        if await self._sleep(self.ctx.startup_delay):
            return
        took = go_duration(round(time.monotonic() - began, 3))
        self.ctx.pulled_images.add((self.node_name, image))
        self._record(
            "Pulled",
            f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
            "Image size: 0 bytes.",
            state,
        )

    async def _start_process(
        self, state: ContainerState, spec: JSON, env: dict[str, str], mounts: list[Mount]
    ) -> LocalProcess:
        argv = [translate(part, mounts) for part in command_line(spec, env)]
        if not argv:
            raise StartError(
                f'container "{state.name}" has neither command nor args: the emulator runs '
                "containers as local processes and has no image entrypoint, so set command"
            )
        env = {name: translate(value, mounts) for name, value in env.items()}
        home = pod_folder(self.ctx.state_dir, self.namespace, self.name)
        cwd = working_folder(spec, mounts, home)
        if cwd != home:
            try:
                cwd.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StartError(f"cannot create working directory {cwd}: {exc}") from exc
        python_bin = str(Path(sys.executable).parent)
        full_env = {
            "PATH": os.pathsep.join([python_bin, os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(home),
            "HOSTNAME": self._hostname(),
            **env,
        }
        log_path = log_folder(self.ctx.state_dir, self.namespace, self.name) / f"{state.name}.log"
        netns = self._sandbox.netns if self._sandbox is not None else None
        process = await LocalProcess.start(
            argv,
            cwd=cwd,
            env=full_env,
            log_path=log_path,
            open_stdin=bool(spec.get("stdin")),
            netns=netns,
        )
        self._exec_contexts[state.name] = ExecContext(
            full_env, cwd, lambda part: translate(part, mounts), netns
        )
        self.ctx.store.logs[(self.namespace, self.name, state.name)] = log_path
        return process

    def _hostname(self) -> str:
        pod = self._current()
        return str(((pod or {}).get("spec") or {}).get("hostname") or self.name)

    def _is_current(self, state: ContainerState, cid: str) -> bool:
        """Whether this run of the container (``cid``) is still the one running."""
        return state.running and state.container_id == cid and not self.stopping

    async def _watch_probes(
        self,
        state: ContainerState,
        spec: JSON,
        cid: str,
        on_started: Callable[[], None] | None,
    ) -> None:
        """The startupProbe, then the readinessProbe, of one run of a container."""
        startup = spec.get("startupProbe")
        readiness = spec.get("readinessProbe")
        if startup is not None:
            if not await self._await_startup(state, spec, startup, cid):
                return
            state.started = True
            state.ready = readiness is None
            self._publish()
        if on_started is not None:
            on_started()
        if readiness is not None:
            await self._probe_until_ready(state, spec, readiness, cid)

    async def _await_startup(
        self, state: ContainerState, spec: JSON, probe: JSON, cid: str
    ) -> bool:
        """True once the startup probe passes; the container is killed (and so restarted as
        its policy says) when it has not passed in time."""
        delay = float(probe.get("initialDelaySeconds") or 0)
        budget = float(probe.get("periodSeconds") or 10) * float(probe.get("failureThreshold") or 3)
        deadline = time.monotonic() + delay + budget
        if await self._sleep(delay):
            return False
        while self._is_current(state, cid):
            if await self._probe(state, spec, probe):
                return self._is_current(state, cid)
            if time.monotonic() >= deadline:
                self._record("Unhealthy", "Startup probe failed", state, warning=True)
                what = "Init container" if state.init else "Container"
                suffix = "" if state.init else ", will be restarted"
                self._record("Killing", f"{what} {state.name} failed startup probe{suffix}", state)
                self._kill_container(state)
                return False
            if await self._sleep(_PROBE_INTERVAL):
                return False
        return False

    async def _probe_until_ready(
        self, state: ContainerState, spec: JSON, probe: JSON, cid: str
    ) -> None:
        """Honour a readiness probe: ready once it first passes."""
        if await self._sleep(float(probe.get("initialDelaySeconds") or 0)):
            return
        while self._is_current(state, cid):
            if await self._probe(state, spec, probe):
                if self._is_current(state, cid):
                    state.ready = True
                    self._publish()
                return
            if await self._sleep(_PROBE_INTERVAL):
                return

    async def _probe(self, state: ContainerState, spec: JSON, probe: JSON) -> bool:
        context = self._exec_contexts.get(state.name)
        return await probe_once(probe, self.ip or "127.0.0.1", spec, exec_context=context)

    def _kill_container(self, state: ContainerState) -> None:
        """SIGTERM one container, SIGKILL after the grace period if it is still there."""
        self._signal(state, signal.SIGTERM)
        process = self._processes.get(state.name)
        if process is None:
            return

        def force() -> None:
            if process.alive:
                process.signal_group(signal.SIGKILL)

        asyncio.get_running_loop().call_later(self._grace_period(), force)

    def _signal(self, state: ContainerState, sig: signal.Signals) -> None:
        """Signal a container's process; a simulated container exits as if it had been."""
        process = self._processes.get(state.name)
        if process is not None:
            process.signal_group(sig)
            return
        future = self._exits.get(state.name)
        if future is not None and not future.done() and not self.local:
            future.set_result(128 + sig)

    def _schedule_outcome(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        future = self._exits.get(name)
        if future is None or future.done() or not self.outcome.ends:
            return
        code = self.outcome.code

        def end() -> None:
            if not future.done():
                future.set_result(code)

        self._timers[name] = asyncio.get_running_loop().call_later(self.outcome.after, end)

    # -- stopping --------------------------------------------------------------------------
    async def _terminate(self) -> None:
        """Stop every running container within the grace period (app and init containers
        first, then the sidecars in reverse order), then settle the phase."""
        first = [s for s in self.init + self.app if s.running and not s.sidecar]
        for state in first:
            self._record("Killing", f"Stopping container {state.name}", state)
        for state in first:
            self._signal(state, signal.SIGTERM)
        for name, future in self._exits.items():
            if name not in self._processes and not future.done() and not self._is_sidecar(name):
                future.set_result(_KILLED_EXIT_CODE)
        if await self._until_deadline([self._exits[s.name] for s in first]):
            await self._terminate_sidecars()
        if not await self._until_deadline(list(self._helpers)):
            for state in self.init + self.app:
                self._signal(state, signal.SIGKILL)
            if self._helpers:
                await asyncio.wait(list(self._helpers), timeout=5)
        codes = [s.exit_code for s in self.app]
        self._final_phase = "Succeeded" if codes and all(c == 0 for c in codes) else "Failed"
        self._publish()

    async def _terminate_sidecars(self) -> None:
        """SIGTERM the running sidecars in reverse order, each once the later ones are gone."""
        for state in reversed([s for s in self.init if s.sidecar]):
            if state.running:
                self._record("Killing", f"Stopping container {state.name}", state)
                self._signal(state, signal.SIGTERM)
                if not await self._until_deadline([self._exits[state.name]]):
                    return

    def _is_sidecar(self, name: str) -> bool:
        return any(s.sidecar and s.name == name for s in self.init)

    async def _until_deadline(self, waitables: list[asyncio.Future[Any]]) -> bool:
        """Wait for all ``waitables`` until the stop deadline, which may move closer while
        waiting; False when it passed first."""
        pending = [w for w in waitables if not w.done()]
        while pending:
            self._deadline_changed.clear()
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return False
            changed = asyncio.ensure_future(self._deadline_changed.wait())
            stop = asyncio.ensure_future(self._stop_event.wait()) if not self.stopping else None
            extra = [changed] + ([stop] if stop is not None else [])
            await asyncio.wait(
                [*pending, *extra], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for waiting in extra:
                waiting.cancel()
            if stop is not None and self.stopping:
                return True  # deleted meanwhile: the caller hands over to _terminate
            pending = [w for w in pending if not w.done()]
        return True

    def _kill_all(self, sig: signal.Signals) -> None:
        for process in list(self._processes.values()):
            process.signal_group(sig)

    async def _finish(self) -> None:
        """Free the pod's network; remove the pod object if it was being deleted."""
        try:
            await self.ctx.network.release(self.uid)
        except Exception:  # never keep a pod from finishing: closing the network sweeps it
            log.exception("pod network of %s/%s not released", self.namespace, self.name)
        self.done = True
        pod = self._current()
        if (
            pod is not None
            and self.stopping
            and not self.removed
            and not pod["metadata"].get("finalizers")
        ):
            with contextlib.suppress(Exception):
                self.ctx.store.delete(PODS, self.namespace, self.name)
        self._on_done(self)

    # -- status and events -----------------------------------------------------------------
    def _current(self) -> JSON | None:
        pod = self.ctx.store.get(PODS, self.namespace, self.name)
        if pod is None or pod["metadata"].get("uid") != self.uid:
            return None
        return pod

    def _publish(self) -> None:
        """Write the pod status as the kubelet sees it now (nothing once the pod is gone)."""
        if self.removed:
            return
        pod = self._current()
        if pod is None:
            return
        now = now_rfc3339()
        phase = self._final_phase or pod_phase(self.init, self.app, self._init_failed)
        new = copy.deepcopy(pod)
        status = new.setdefault("status", {})
        status["phase"] = phase
        status["conditions"] = pod_conditions(
            status.get("conditions") or [],
            sandbox_ready=self.ip is not None and phase not in ("Succeeded", "Failed"),
            init=self.init,
            app=self.app,
            phase=phase,
            now=now,
        )
        status["hostIP"] = self._host_ip
        status["hostIPs"] = [{"ip": self._host_ip}]
        if self.ip is not None:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        status["startTime"] = self._start_time
        if self.init:
            status["initContainerStatuses"] = [c.status() for c in self.init]
        status["containerStatuses"] = [c.status() for c in self.app]
        self.ctx.store.update(PODS, new)

    def _record_pod(
        self, reason: str, message: str, *, warning: bool = False, field_path: str | None = None
    ) -> None:
        """An event about the pod (its sandbox), or one of its containers (``field_path``)."""
        pod = self._current()
        if pod is None or self.removed:
            return
        self.ctx.events.record(
            pod,
            reason,
            message,
            component=COMPONENT,
            event_type="Warning" if warning else "Normal",
            host=self.node_name,
            field_path=field_path,
        )

    def _record(
        self, reason: str, message: str, state: ContainerState, *, warning: bool = False
    ) -> None:
        group = "initContainers" if state.init else "containers"
        self._record_pod(
            reason, message, warning=warning, field_path=f"spec.{group}{{{state.name}}}"
        )

    def _append_log(self, container: str, text: str) -> None:
        key = (self.namespace, self.name, container)
        current = self.ctx.store.logs.get(key)
        self.ctx.store.logs[key] = (current if isinstance(current, str) else "") + text
