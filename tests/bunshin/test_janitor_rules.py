"""Which Jobs and Workloads the janitor touches: only what an interruption left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiinfn_hub.bunshin.job import (
    CANCELLED,
    QUEUE_LABEL,
    SUBMISSION_GRACE_SECONDS,
    interrupted_submissions,
    release_patch,
    unfinished_cancels,
    unreleased,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD = (NOW - timedelta(seconds=SUBMISSION_GRACE_SECONDS + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
NEW = (NOW - timedelta(seconds=SUBMISSION_GRACE_SECONDS - 5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(name: str, created: str = OLD, queued: bool = False, **extra: Any) -> dict[str, Any]:
    labels = {QUEUE_LABEL: "cms"} if queued else {}
    meta = {"name": name, "uid": f"uid-{name}", "creationTimestamp": created, "labels": labels}
    meta.update(extra.pop("metadata", {}))
    return {"metadata": meta, "spec": {"suspend": True, **extra.pop("spec", {})}, **extra}


def test_only_old_unreleased_never_started_jobs_are_interrupted_submissions() -> None:
    jobs = [
        job("left"),
        job("in-progress", created=NEW),
        job("queued", queued=True),
        job("started", status={"startTime": OLD}),
        job("running", spec={"suspend": False}),
        job("no-time", created="not a time"),
    ]
    assert interrupted_submissions(jobs, NOW) == ["left"]


def test_unreleased_and_release_patch_take_the_queue_label_off_and_back() -> None:
    manifest = job("j", queued=True)
    bare, queue = unreleased(manifest)
    assert QUEUE_LABEL not in bare["metadata"]["labels"] and queue == "cms"
    assert manifest["metadata"]["labels"][QUEUE_LABEL] == "cms"  # the input is not changed
    assert release_patch(queue) == {"metadata": {"labels": {QUEUE_LABEL: "cms"}}}


def test_only_active_workloads_of_cancelled_jobs_are_unfinished_cancels() -> None:
    cancelled = job("c", metadata={"annotations": {CANCELLED: "dana"}})
    live = job("l")

    def workload(name: str, of: dict[str, Any], active: bool | None) -> dict[str, Any]:
        spec = {} if active is None else {"active": active}
        labels = {"kueue.x-k8s.io/job-uid": of["metadata"]["uid"]}
        return {"metadata": {"name": name, "labels": labels}, "spec": spec}

    workloads = [
        workload("w-active", cancelled, True),
        workload("w-default", cancelled, None),  # active unless said otherwise
        workload("w-done", cancelled, False),
        workload("w-live", live, True),
    ]
    found = [w["metadata"]["name"] for w in unfinished_cancels([cancelled, live], workloads)]
    assert found == ["w-active", "w-default"]
