"""The spawn progress page in steps a person understands, from Kubernetes events.

kubespawner shows each pod event as it comes ("Pulling image … Image size: 0 bytes") and moves
the bar a third of the way to 90% per event. Here each event becomes a step of the start
("Scheduled on server-3 with …", "Preparing your home and project folders", "Mounting your
bucket", "Starting JupyterLab") with a fixed place on the bar; the raw event stays in the event
(``raw_event``) and in a collapsed details line under the step. Events that add nothing for a
person (a container created, a helper image present) become no step of their own: their raw
lines go under the next step. Pure functions, tested directly.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NOTEBOOK_CONTAINER = "notebook"  # kubespawner's name of the server's container
_FIELD_PATH = re.compile(r"^spec\.(?:initContainers|containers|ephemeralContainers)\{(.+)\}$")


@dataclass(frozen=True)
class StartContext:
    """What the steps name: the accelerator asked for, the image and the helper containers."""

    accelerator: str | None  # e.g. "1 x NVIDIA A100 MIG slice 1g.10gb"; None: CPU only
    image: str  # the catalogue image's name, e.g. "cuda-ml"
    storage_init: str = "storage-init"
    bucket_sidecar: str = "bucket-mount"
    notebook: str = NOTEBOOK_CONTAINER


@dataclass(frozen=True)
class Step:
    """One line of the progress page; ``progress`` None leaves the bar where it is."""

    message: str
    progress: int | None = None


@dataclass
class StepTracker:
    """Turns the events of one start into progress-page events, in order: keeps the bar
    moving forward and the raw lines of events that were no step of their own."""

    context: StartContext
    progress: int = 0
    held: list[str] = field(default_factory=list)

    def page_event(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        """The progress-page event for the Kubernetes event ``raw`` (None: held for later)."""
        step = translate_event(raw, self.context)
        line = raw_line(raw)
        if step is None:
            self.held.append(line)
            return None
        lines, self.held = [*self.held, line], []
        if step.progress is not None:
            self.progress = max(self.progress, step.progress)
        return {
            "progress": self.progress,
            "message": step.message,
            "html_message": step_html(step.message, lines),
            "raw_event": raw,
        }


def container_of(event: dict[str, Any]) -> str | None:
    """The container an event is about (``spec.containers{notebook}``), if any."""
    path = str((event.get("involvedObject") or {}).get("fieldPath") or "")
    found = _FIELD_PATH.match(path)
    return found.group(1) if found else None


def raw_line(event: dict[str, Any]) -> str:
    """The event as kubespawner shows it: ``<time> [<type>] <message>``."""
    when = event.get("lastTimestamp") or event.get("eventTime") or ""
    return f"{when} [{event.get('type') or 'Normal'}] {event.get('message') or ''}".strip()


def translate_event(event: dict[str, Any], context: StartContext) -> Step | None:
    """The step a Kubernetes event of the server's pod means to its user (None: no step)."""
    reason = str(event.get("reason") or "")
    message = str(event.get("message") or "")
    container = container_of(event)
    if reason == "Scheduled":
        node = message.rsplit(" to ", 1)[-1].strip() if " to " in message else "a server"
        holds = f"with {context.accelerator}" if context.accelerator else "(CPU only)"
        return Step(f"Scheduled on {node} {holds}", 20)
    if reason == "FailedScheduling":
        return Step(f"Waiting for room on a server: {message}")
    if reason == "Pulling":
        if container == context.notebook:
            return Step(
                f"Downloading the {context.image} image (the first time on a server this can "
                "take a few minutes)",
                30,
            )
        return Step("Downloading the platform's helper image", 25)
    if reason == "Pulled":
        if container == context.notebook:
            return Step(f"The {context.image} image is ready", 40)
        return None
    if reason == "Started":
        if container == context.storage_init:
            return Step("Preparing your home and project folders", 50)
        if container == context.bucket_sidecar:
            return Step("Mounting your bucket", 60)
        if container == context.notebook:
            return Step("Starting JupyterLab", 80)
        return None
    if event.get("type") == "Warning":
        return Step(f"Problem: {message}")
    return None  # Created and other routine events: their raw lines go under the next step


def step_html(message: str, raw_lines: Iterable[str]) -> str:
    """The step, then its Kubernetes events in a collapsed details line (escaped)."""
    lines = "<br>".join(html.escape(line) for line in raw_lines)
    return (
        f"{html.escape(message)}"
        '<details class="aiinfn-raw-event"><summary>Kubernetes events</summary>'
        f"<small><code>{lines}</code></small></details>"
    )
