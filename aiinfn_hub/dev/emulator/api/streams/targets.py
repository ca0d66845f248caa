"""Which container a stream request names, checked as kube-apiserver and the kubelet check it
before the upgrade: the pod (404), the container (400), a node, the options, a running
container. Every refusal is a ``Status`` with the real wording, so clients print what they
would print against a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...controllers.processes import RunningContainer
from ...errors import ApiError
from ...resources import PODS
from ...store import Store
from ..paths import parse_bool

JSON = dict[str, Any]


class ContainerRuntime(Protocol):
    """What the streams reach of the node: running local containers and pod IPs."""

    def running_container(
        self, namespace: str, pod: str, uid: str, container: str
    ) -> RunningContainer | None:
        """The container's local process; None when it has none (simulated)."""

    def pod_address(self, uid: str) -> str | None:
        """The IP the kubelet gave the pod; None when it has no sandbox here."""


@dataclass(frozen=True)
class StreamOptions:
    """The query of an exec or attach request (``PodExecOptions``/``PodAttachOptions``)."""

    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


@dataclass(frozen=True)
class StreamTarget:
    """A checked request: the pod, its container spec, and its process (None: simulated)."""

    pod: JSON
    container: JSON
    running: RunningContainer | None

    @property
    def pod_name(self) -> str:
        return str(self.pod["metadata"]["name"])


def find_pod(store: Store, namespace: str, name: str) -> JSON:
    """The pod, or the API server's 404."""
    pod = store.get(PODS, namespace, name)
    if pod is None:
        raise ApiError.not_found(PODS, name)
    return pod


def container_spec(pod: JSON, requested: str | None) -> JSON:
    """The container a request names: the only one when none is named, else 400 with the
    API server's list of choices (kubectl picks one itself from the
    ``kubectl.kubernetes.io/default-container`` annotation, other clients must name it)."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or [])
    init = list(spec.get("initContainers") or [])
    if not requested:
        if len(containers) == 1:
            return dict(containers[0])
        message = f"a container name must be specified for pod {name}"
        if containers:
            message += f", choose one of: [{' '.join(c['name'] for c in containers)}]"
        if init:
            message += f" or one of the init containers: [{' '.join(c['name'] for c in init)}]"
        raise ApiError.bad_request(message)
    for container in containers + init:
        if container.get("name") == requested:
            return dict(container)
    raise ApiError.bad_request(f"container {requested} is not valid for pod {name}")


def is_running(pod: JSON, container: str) -> bool:
    """Whether the pod status shows ``container`` running (app or init/sidecar container)."""
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return "running" in (cs.get("state") or {})
    return False


def stream_options(arguments: Callable[[str], list[str]], *, exec_: bool) -> StreamOptions:
    """Parse ``command``, ``stdin``, ``stdout``, ``stderr`` and ``tty`` (400 when wrong).

    ``tty`` with ``stderr`` drops stderr, as the kubelet does (a terminal has one output)."""

    def flag(name: str) -> bool:
        values = arguments(name)
        return parse_bool(values[-1] if values else None, name)

    command = arguments("command")
    if exec_ and not command:
        raise ApiError.bad_request("you must specify at least one command for the container")
    tty = flag("tty")
    options = StreamOptions(command, flag("stdin"), flag("stdout"), flag("stderr") and not tty, tty)
    if not (options.stdin or options.stdout or options.stderr):
        raise ApiError.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return options


def resolve_target(
    store: Store,
    runtime: ContainerRuntime | None,
    namespace: str,
    name: str,
    container: str | None,
) -> StreamTarget:
    """The API server's checks then the kubelet's: a pod, a container, a node, a running
    container (``container not found ("x")`` otherwise, as the kubelet answers)."""
    pod = find_pod(store, namespace, name)
    spec = container_spec(pod, container)
    if not (pod.get("spec") or {}).get("nodeName"):
        raise ApiError.bad_request(f"pod {name} does not have a host assigned")
    if not is_running(pod, spec["name"]):
        raise ApiError.bad_request(f'container not found ("{spec["name"]}")')
    running = None
    if runtime is not None:
        uid = pod["metadata"].get("uid", "")
        running = runtime.running_container(namespace, name, uid, spec["name"])
    return StreamTarget(pod, spec, running)
