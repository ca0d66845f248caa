"""The pods ``log`` subresource: which container, which lines, and following a live log.

Logs are what the kubelet keeps in ``Store.logs``: the text itself, or the file a local process
writes to. Messages follow the kubelet's (``a container name must be specified...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ApiError
from ..resources import PODS
from ..store import Store
from .listing import Query
from .paths import parse_bool

JSON = dict[str, Any]


@dataclass(frozen=True)
class LogRequest:
    """One ``GET .../pods/{name}/log``: the container resolved, the options parsed."""

    namespace: str
    pod: str
    container: str
    tail_lines: int | None
    limit_bytes: int | None
    follow: bool

    @property
    def key(self) -> tuple[str, str, str]:
        """Where the kubelet keeps this container's log in ``Store.logs``."""
        return (self.namespace, self.pod, self.container)


def parse_log_request(pod: JSON, query: Query) -> LogRequest:
    """Resolve the container (400 when ambiguous or unknown) and read the options."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    containers = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    container = query("container")
    if not container:
        if len(containers) != 1:
            message = (
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(containers)}]"
            )
            if init:
                message += f" or one of the init containers: [{' '.join(init)}]"
            raise ApiError.bad_request(message)
        container = containers[0]
    elif container not in containers + init:
        raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
    return LogRequest(
        pod["metadata"]["namespace"],
        name,
        container,
        _non_negative(query("tailLines"), "tailLines"),
        _positive(query("limitBytes"), "limitBytes"),
        parse_bool(query("follow"), "follow"),
    )


def _non_negative(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise ApiError.bad_request(f"invalid value for {name}: {text}") from exc
    if value < 0:
        raise ApiError(
            422,
            "Invalid",
            f'PodLogOptions "" is invalid: {name}: Invalid value: {value}: '
            "must be greater than or equal to 0",
        )
    return value


def _positive(text: str | None, name: str) -> int | None:
    value = _non_negative(text, name)
    if value == 0:
        raise ApiError(
            422,
            "Invalid",
            f'PodLogOptions "" is invalid: {name}: Invalid value: 0: must be greater than 0',
        )
    return value


def read_log(source: str | Path | None) -> str:
    """The whole log so far ("" when a log file is not there yet)."""
    if source is None:
        return ""
    if isinstance(source, Path):
        try:
            return source.read_text(errors="replace")
        except OSError:
            return ""
    return source


def initial_text(store: Store, pod: JSON, request: LogRequest) -> str:
    """The log to send first; 400 while the container has not started."""
    source = store.logs.get(request.key)
    if source is None:
        raise ApiError.bad_request(
            f'container "{request.container}" in pod "{request.pod}" is waiting to start: '
            f"{_waiting_reason(pod, request.container)}"
        )
    text = read_log(source)
    if request.tail_lines is not None:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-request.tail_lines :]) if request.tail_lines else ""
    if request.limit_bytes is not None:
        text = text.encode()[: request.limit_bytes].decode(errors="ignore")
    return text


def _waiting_reason(pod: JSON, container: str) -> str:
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            if reason:
                return str(reason)
    return "ContainerCreating"


def log_finished(store: Store, request: LogRequest) -> bool:
    """A followed log ends when the pod is gone or its container can write no more."""
    pod = store.get(PODS, request.namespace, request.pod)
    if pod is None:
        return True
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == request.container:
            state = cs.get("state") or {}
            return "terminated" in state and pod["spec"].get("restartPolicy") == "Never"
    return False
