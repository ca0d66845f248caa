"""Pure builders of the pod status the kubelet reports: container states, conditions, phase.

The shapes follow what a containerd-based kubelet writes, complete enough for
kubernetes_asyncio's client-side validation (e.g. ``imageID`` is required in every container
status) and for KubeSpawner, which waits for phase Running, a podIP and every container ready.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# the conditions the kubelet owns, in the order it reports them
KUBELET_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


def normalize_image(image: str) -> str:
    """``python:3.11`` -> ``docker.io/library/python:3.11``, as the container runtime reports."""
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


def image_id(image: str) -> str:
    """A stable, made-up content digest reference for an image."""
    repository = normalize_image(image).split("@", 1)[0].rsplit(":", 1)[0]
    if "@" in image:
        return f"{repository}@{image.split('@', 1)[1]}"
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def container_id(pod_uid: str, name: str, restart: int) -> str:
    seed = f"{pod_uid}/{name}/{restart}".encode()
    return f"containerd://{hashlib.sha256(seed).hexdigest()}"


@dataclass
class ContainerState:
    """What the kubelet knows about one container; ``status()`` renders the API shape."""

    name: str
    image: str
    init: bool = False
    # an init container with restartPolicy Always (KEP-753): started in order, then kept
    # running beside the app containers
    sidecar: bool = False
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JSON = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str | None = None

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> bool:
        return "terminated" in self.state

    @property
    def exit_code(self) -> int | None:
        if not self.terminated:
            return None
        return int(self.state["terminated"]["exitCode"])

    def status(self) -> JSON:
        out: JSON = {
            "name": self.name,
            "image": normalize_image(self.image),
            "imageID": image_id(self.image) if self.container_id else "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def terminated_state(
    exit_code: int, started_at: str | None, finished_at: str, cid: str | None, message: str = ""
) -> JSON:
    """``state.terminated`` with the reason the runtime gives for an exit code."""
    state: JSON = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if cid:
        state["containerID"] = cid
    if message:
        state["message"] = message
    return {"terminated": state}


def pod_phase(init: list[ContainerState], app: list[ContainerState], init_failed: bool) -> str:
    """The kubelet's ``getPhase``: Pending until the app containers run; Succeeded/Failed once
    they have stopped for good and no sidecar runs any more (sidecar exits do not count)."""
    if init_failed:
        return "Failed"
    regular_init = [c for c in init if not c.sidecar]
    if not app or any(not c.terminated for c in regular_init):
        return "Pending"
    if not any(c.running or c.restart_count > 0 or c.terminated for c in app):
        return "Pending"
    sidecar_running = any(c.running for c in init if c.sidecar)
    if all(c.terminated for c in app) and not sidecar_running:
        return "Succeeded" if all(c.exit_code == 0 for c in app) else "Failed"
    return "Running"


def _initialized(container: ContainerState) -> bool:
    """A sidecar counts once started (startup probe passed), an init container once it has
    exited 0 (the kubelet reports it ready then)."""
    return container.started if container.sidecar else container.ready


def _condition(kind: str, ok: bool, now: str, reason: str = "", message: str = "") -> JSON:
    condition: JSON = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if reason and (not ok or reason == "PodCompleted"):
        condition["reason"] = reason
    if not ok and message:
        condition["message"] = message
    return condition


def pod_conditions(
    existing: Iterable[JSON],
    *,
    sandbox_ready: bool,
    init: list[ContainerState],
    app: list[ContainerState],
    phase: str,
    now: str,
) -> list[JSON]:
    """The kubelet's conditions; others (DisruptionTarget) and unchanged transition times stay."""
    existing = list(existing)
    pending_init = [c.name for c in init if not _initialized(c)]
    # sidecars are part of readiness, listed first (GenerateContainersReadyCondition)
    unready = [c.name for c in init if c.sidecar and not c.ready]
    unready += [c.name for c in app if not c.ready]
    completed = phase in ("Succeeded", "Failed")
    ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    ready_message = "" if completed else f"containers with unready status: [{' '.join(unready)}]"
    # once an app container has started the pod stays initialized, even while a sidecar
    # restarts; Succeeded says PodCompleted
    app_started = any(c.running or c.terminated for c in app)
    initialized = phase == "Succeeded" or app_started or not pending_init
    init_reason = "PodCompleted" if phase == "Succeeded" else "ContainersNotInitialized"
    init_message = f"containers with incomplete status: [{' '.join(pending_init)}]"
    mine = {
        "PodReadyToStartContainers": _condition("PodReadyToStartContainers", sandbox_ready, now),
        "Initialized": _condition(
            "Initialized",
            initialized,
            now,
            init_reason,
            "" if initialized else init_message,
        ),
        "Ready": _condition(
            "Ready", not unready and not completed, now, ready_reason, ready_message
        ),
        "ContainersReady": _condition(
            "ContainersReady", not unready and not completed, now, ready_reason, ready_message
        ),
        "PodScheduled": _condition("PodScheduled", True, now),
    }
    old = {c.get("type"): c for c in existing}
    out = []
    for kind in KUBELET_CONDITIONS:
        condition = mine[kind]
        previous = old.get(kind)
        if previous is not None and previous.get("status") == condition["status"]:
            condition["lastTransitionTime"] = previous.get("lastTransitionTime", now)
        out.append(condition)
    out.extend(c for c in existing if c.get("type") not in mine)
    return out
