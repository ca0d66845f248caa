"""The spawn progress page in steps a person understands (``aiinfn_hub.spawner.progress_steps``)."""

from __future__ import annotations

from typing import Any

from aiinfn_hub.spawner.progress_steps import (
    StartContext,
    StepTracker,
    container_of,
    raw_line,
    translate_event,
)

CONTEXT = StartContext(accelerator="1 \u00d7 NVIDIA A100 MIG slice 1g.10gb", image="cuda-ml")


def _event(reason: str, message: str, container: str | None = None, **extra: Any) -> dict[str, Any]:
    path = f"spec.containers{{{container}}}" if container else None
    if container in ("storage-init",):
        path = f"spec.initContainers{{{container}}}"
    return {
        "reason": reason,
        "message": message,
        "type": extra.pop("type", "Normal"),
        "lastTimestamp": "2026-12-07T16:00:00Z",
        "involvedObject": {"kind": "Pod", "name": "jupyter-alice", "fieldPath": path},
        **extra,
    }


# the events of a start on the local platform, in the order kubelet sends them
START = [
    _event("Scheduled", "Successfully assigned jupyterhub/jupyter-alice to server-3"),
    _event("Pulling", 'Pulling image "aiinfn/storage-init:1"', "storage-init"),
    _event(
        "Pulled",
        'Successfully pulled image "aiinfn/storage-init:1" in 1s. Image size: 0 bytes.',
        "storage-init",
    ),
    _event("Created", "Created container: storage-init", "storage-init"),
    _event("Started", "Started container storage-init", "storage-init"),
    _event("Pulling", 'Pulling image "harbor/cuda-ml:2026.11"', "notebook"),
    _event("Pulled", 'Successfully pulled image "harbor/cuda-ml:2026.11" in 2s.', "notebook"),
    _event("Created", "Created container: notebook", "notebook"),
    _event("Started", "Started container notebook", "notebook"),
    _event("Created", "Created container: bucket-mount", "bucket-mount"),
    _event("Started", "Started container bucket-mount", "bucket-mount"),
]


def test_a_start_reads_as_steps_with_the_bar_moving_forward() -> None:
    tracker = StepTracker(CONTEXT)
    shown = [e for e in (tracker.page_event(raw) for raw in START) if e is not None]
    assert [e["message"] for e in shown] == [
        "Scheduled on server-3 with 1 \u00d7 NVIDIA A100 MIG slice 1g.10gb",
        "Downloading the platform's helper image",
        "Preparing your home and project folders",
        "Downloading the cuda-ml image (the first time on a server this can take a few minutes)",
        "The cuda-ml image is ready",
        "Starting JupyterLab",
        "Mounting your bucket",
    ]
    bar = [e["progress"] for e in shown]
    assert bar == sorted(bar) and bar[0] == 20 and bar[-1] == 80
    assert all(isinstance(e["raw_event"], dict) for e in shown)


def test_the_raw_events_stay_available_under_each_step() -> None:
    tracker = StepTracker(CONTEXT)
    shown = [e for e in (tracker.page_event(raw) for raw in START) if e is not None]
    # every raw event is under some step: none is lost, the routine ones go under the next
    details = "".join(e["html_message"] for e in shown)
    for raw in START:
        assert raw["message"].replace('"', "&quot;") in details, raw["message"]
    prepare = next(e for e in shown if e["message"].startswith("Preparing"))
    assert "Image size: 0 bytes" in prepare["html_message"]  # the helper's "Pulled", held
    assert '<details class="aiinfn-raw-event">' in prepare["html_message"]


def test_messages_are_escaped_in_the_html() -> None:
    tracker = StepTracker(CONTEXT)
    event = tracker.page_event(_event("FailedScheduling", "<b>0/4 nodes</b>", type="Warning"))
    assert event is not None and "<b>" not in event["html_message"]
    assert event["message"] == "Waiting for room on a server: <b>0/4 nodes</b>"
    assert event["progress"] == 0  # waiting does not move the bar


def test_cpu_only_and_problems() -> None:
    cpu = StartContext(accelerator=None, image="base")
    step = translate_event(START[0], cpu)
    assert step is not None and step.message == "Scheduled on server-3 (CPU only)"
    backoff = _event("BackOff", "Back-off restarting failed container", "notebook", type="Warning")
    problem = translate_event(backoff, cpu)
    assert problem is not None and problem.message.startswith("Problem: Back-off")
    assert translate_event(_event("Created", "Created container: x", "x"), cpu) is None


def test_container_and_raw_line() -> None:
    assert container_of(START[4]) == "storage-init" and container_of(START[0]) is None
    assert raw_line(START[0]) == (
        "2026-12-07T16:00:00Z [Normal] Successfully assigned jupyterhub/jupyter-alice to server-3"
    )
