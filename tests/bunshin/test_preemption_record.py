"""The record of preemptions kept on the Job: a preempted pod is deleted (on a real cluster it is
gone within seconds), so the service writes each notebook's preemption into the Job's
``aiinfn.infn.it/preemptions`` annotation as soon as it sees it, and the job's view reads the
record with what the pods still show. The record's merge (idempotent, bounded, totals), the view
over it, the recorder against a fake API and over the emulator (the pod deleted, two recorders
at once, a restart)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulated_server import JOBS, ROOT, start_emulator
from kubernetes_asyncio import client, config
from test_notebooks_first import (
    NAME,
    NOW,
    job,
    pending,
    preempted,
    running,
    succeeded_job,
    workload,
)

from aiinfn_hub.bunshin import preemption_record, recorder
from aiinfn_hub.bunshin.job_view import job_status, job_view
from aiinfn_hub.bunshin.preemption_record import MAX_RECORDS, PreemptionRecord, entry, parse
from aiinfn_hub.bunshin.recorder import PreemptionRecorder, pod_summary
from aiinfn_hub.bunshin.service import JobService
from aiinfn_hub.config import validate_platform_config
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.kube.informer import Informer
from aiinfn_hub.kube.rest import KubeError, KubeRest
from aiinfn_hub.services.caller import Caller

JSON = dict[str, Any]
ANNOTATION = "aiinfn.infn.it/preemptions"
AT = datetime(2025, 3, 7, 14, 2, 31, tzinfo=UTC)


def item(minute: int, pod: str | None = None, lost: int = 60, index: int | None = None) -> JSON:
    return entry(AT + timedelta(minutes=minute), "gpu-node-1", index, lost, pod)


def recorded(record: PreemptionRecord) -> JSON:
    """``job()`` carrying ``record`` in its annotation."""
    found = job()
    found["metadata"]["annotations"][ANNOTATION] = record.to_json()
    return found


def with_uid(pod: JSON, uid: str) -> JSON:
    pod["metadata"]["uid"] = uid
    return pod


# -- the record ----------------------------------------------------------------------------------


def test_adding_is_idempotent_by_pod_uid() -> None:
    one = PreemptionRecord().add(item(0, "uid-a", lost=751))
    assert one is not None and one.count == 1 and one.lost_seconds == 751
    assert one.add(item(0, "uid-a", lost=751)) is None  # the same pod again
    assert one.add(item(5, "uid-a", lost=900)) is None  # seen later, other times: still it
    two = one.add(item(1, "uid-b", lost=30))
    assert two is not None and (two.count, two.lost_seconds) == (2, 781)
    assert [e["pod"] for e in two.entries] == ["uid-a", "uid-b"]
    # an entry without a uid is the same preemption when time, node and index are
    assert two.add(item(1, None, lost=30)) is None
    assert two.add(item(2, None)) is not None


def test_the_record_is_bounded_and_its_totals_count_everything() -> None:
    record = PreemptionRecord()
    for minute in [m ^ 1 for m in range(30)]:  # not quite in order: the most recent stay listed
        added = record.add(item(minute, f"uid-{minute}", lost=100))
        assert added is not None
        record = added
    assert len(record.entries) == MAX_RECORDS == 20
    assert [e["pod"] for e in record.entries] == [f"uid-{m}" for m in range(10, 30)]
    assert (record.count, record.lost_seconds) == (30, 3000)
    # one pushed out of the list stays counted, and is not counted again
    assert record.add(item(3, "uid-3", lost=100)) is None
    text = record.to_json()
    assert parse(text) == record and len(text) < 4_000
    assert json.loads(text)["totals"] == {"count": 30, "lostSeconds": 3000}


def test_a_record_that_does_not_parse_reads_as_empty() -> None:
    for text in (None, "", "not json", "[]", '{"preemptions": 3}', '{"totals": "x"}'):
        assert parse(text) == PreemptionRecord()
    # bad entries are left out; totals never count fewer than the entries listed
    mixed = {
        "preemptions": [
            {"at": "2025-03-07T14:02:31Z", "node": "n", "index": None, "lostSeconds": 5},
            {"at": "yesterday", "lostSeconds": 5},
            {"at": "2025-03-07T14:03:00Z", "lostSeconds": -1},
            "junk",
        ],
        "totals": {"count": 0, "lostSeconds": True},
    }
    found = parse(json.dumps(mixed))
    assert len(found.entries) == 1 and (found.count, found.lost_seconds) == (1, 5)


def test_a_pod_that_succeeded_after_all_is_taken_out() -> None:
    record = PreemptionRecord().add(item(0, "uid-a", lost=10))
    assert record is not None
    record = record.add(item(1, "uid-b", lost=20))
    assert record is not None
    out = record.remove("uid-a")
    assert out is not None and [e["pod"] for e in out.entries] == ["uid-b"]
    assert (out.count, out.lost_seconds) == (1, 20)
    assert out.remove("uid-a") is None and out.remove("") is None


# -- the view: the same with the pod or only the record ------------------------------------------


def record_of(*pods: JSON) -> PreemptionRecord:
    """What the recorder writes for ``pods``."""
    record = PreemptionRecord()
    for pod in pods:
        added = record.add(recorder_entry(pod))
        record = added or record
    return record


def recorder_entry(pod: JSON) -> JSON:
    from aiinfn_hub.bunshin.job_view import pod_disruption, record_entry

    disruption = pod_disruption(pod)
    assert disruption is not None
    found = record_entry(disruption)
    assert found is not None
    return found


def test_the_view_is_the_same_once_the_preempted_pod_is_gone() -> None:
    gone = with_uid(preempted(), "uid-x7k2p")
    alone = recorded(record_of(gone))
    for live, after in (
        ([gone, pending()], [pending()]),  # waiting for a GPU again
        ([gone, running()], [running()]),  # running again
        ([gone], []),  # not even replaced yet
    ):
        before = job_view(job(), live, workload(), NOW)
        now = job_view(alone, after, workload(), NOW)
        for key in ("status", "reason", "preemptions", "preemptionNote"):
            assert now[key] == before[key], key
        # the record and the pod both there: counted once
        both = job_view(alone, live, workload(), NOW)
        assert both["preemptions"] == before["preemptions"]
        assert both["preemptionNote"] == before["preemptionNote"]
    assert job_status(alone, workload(), [pending()], NOW) == (
        "queued",
        "preempted by a notebook at 14:02, waiting to run again",
    )
    done = job_view(recorded(record_of(gone)) | {"status": succeeded_job()["status"]}, [], None)
    assert done["status"] == "succeeded"
    assert done["preemptionNote"] == "preempted once by a notebook: lost 12 min of running"


def test_a_live_pod_without_uid_is_matched_by_time_node_and_index() -> None:
    alone = recorded(record_of(with_uid(preempted(), "uid-x7k2p")))
    view = job_view(alone, [preempted(), pending()], workload(), NOW)  # the fixture has no uid
    assert len(view["preemptions"]) == 1
    assert view["preemptionNote"] == "preempted once by a notebook: lost 12 min of running"
    # another preemption, not yet recorded: both count
    later = preempted("b9c3d", at="2025-03-07T14:30:00Z")
    view = job_view(alone, [later, pending()], workload(), NOW)
    assert [p["at"] for p in view["preemptions"]] == [
        "2025-03-07T14:02:31Z",
        "2025-03-07T14:30:00Z",
    ]
    assert view["preemptionNote"] == "preempted 2 times by notebooks: lost 52 min of running"
    assert view["reason"] == "preempted by a notebook at 14:30, waiting to run again"


def test_the_note_uses_the_totals_beyond_the_listed_ones() -> None:
    pods = [
        with_uid(preempted(f"p{i}", at=f"2025-03-07T14:{i:02d}:00Z"), f"uid-{i}") for i in range(25)
    ]
    alone = recorded(record_of(*pods))
    view = job_view(alone, [pending()], workload(), NOW)
    assert len(view["preemptions"]) == MAX_RECORDS
    assert view["preemptions"][-1]["at"] == "2025-03-07T14:24:00Z"
    assert view["preemptionNote"].startswith("preempted 25 times by notebooks: lost ")
    assert view["preemptionNote"] == job_view(job(), pods, workload(), NOW)["preemptionNote"]
    # the oldest pods still there (pushed out of the list) are not counted twice
    again = job_view(alone, [*pods[:3], pending()], workload(), NOW)
    assert again["preemptionNote"] == view["preemptionNote"]
    assert view["preemptions"] == again["preemptions"] and "pod" not in view["preemptions"][0]


def test_a_recorded_pod_that_succeeded_after_all_lost_nothing() -> None:
    pod = with_uid(preempted(), "uid-x7k2p")
    alone = recorded(record_of(pod))
    pod["status"]["phase"] = "Succeeded"
    view = job_view(alone | {"status": succeeded_job()["status"]}, [pod], workload(), NOW)
    assert view["preemptions"] == [] and view["preemptionNote"] == ""


# -- the recorder against a fake API -------------------------------------------------------------


class FakeJobs:
    """One Job behind ``read`` and ``merge_patch`` (with the resourceVersion precondition)."""

    def __init__(self, conflicts: int = 0, error: KubeError | None = None) -> None:
        self.job: JSON | None = job()
        self.job["metadata"]["resourceVersion"] = "100"
        self.conflicts = conflicts
        self.error = error
        self.reads = 0
        self.patches = 0

    async def read(self, kind: str, namespace: str, name: str) -> JSON | None:
        assert (kind, namespace, name) == ("Job", "bunshin", NAME)
        self.reads += 1
        await asyncio.sleep(0)  # another writer may go in between
        if self.error is not None:
            raise self.error
        return copy.deepcopy(self.job)

    async def merge_patch(self, kind: str, namespace: str, name: str, patch: JSON) -> JSON:
        assert self.job is not None
        self.patches += 1
        meta = self.job["metadata"]
        stale = patch["metadata"]["resourceVersion"] != meta["resourceVersion"]
        if self.conflicts or stale:
            self.conflicts = max(0, self.conflicts - 1)
            raise KubeError(409, "Conflict", "the object has been modified", kind="Job")
        meta["annotations"] |= patch["metadata"]["annotations"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.job)

    @property
    def record(self) -> PreemptionRecord:
        assert self.job is not None
        return preemption_record.read(self.job)


def fake_recorder(jobs: FakeJobs) -> PreemptionRecorder:
    made = PreemptionRecorder(KubeRest(None), "bunshin")  # type: ignore[arg-type]
    made.cluster = jobs  # type: ignore[assignment]
    return made


def owned(pod: JSON, uid: str) -> JSON:
    pod = with_uid(pod, uid)
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": NAME, "uid": "5c1e-job-uid"}
        | {"controller": True}
    ]
    return pod


async def test_the_recorder_writes_a_preemption_once() -> None:
    jobs = FakeJobs()
    first, second = fake_recorder(jobs), fake_recorder(jobs)  # two replicas
    pod = owned(preempted(terminating=True), "uid-1")
    for seen in (pod, pod, copy.deepcopy(pod)):
        first.observe(seen)
        second.observe(seen)
    await asyncio.gather(first.settled(), second.settled())
    assert jobs.record.count == 1 and jobs.record.entries[0]["pod"] == "uid-1"
    assert jobs.record.entries[0]["lostSeconds"] == 751 and first.writes + second.writes == 1
    reads = jobs.reads
    failed = copy.deepcopy(pod)  # its later events cost nothing
    failed["status"]["phase"] = "Failed"
    first.observe(failed)
    await first.settled()
    assert jobs.reads == reads
    # a restart sees the pod again: read once, not written again
    restarted = fake_recorder(jobs)
    restarted.observe(failed)
    await restarted.settled()
    assert jobs.record.count == 1 and restarted.writes == 0


async def test_the_recorder_ignores_what_no_notebook_did() -> None:
    jobs = FakeJobs()
    rec = fake_recorder(jobs)
    for pod in (
        owned(running(), "uid-r"),
        owned(pending(), "uid-p"),
        owned(preempted(reason="DeletionByTaintManager"), "uid-t"),
        preempted(),  # no uid
    ):
        rec.observe(pod)
    rec.observe({"metadata": None})  # nonsense is logged, never raised
    await rec.settled()
    assert jobs.reads == 0 and jobs.record.count == 0


async def test_conflicts_are_retried_a_bounded_number_of_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = FakeJobs(conflicts=2)
    rec = fake_recorder(jobs)
    rec.observe(owned(preempted(), "uid-1"))
    await rec.settled()
    assert jobs.record.count == 1 and jobs.patches == 3
    jobs = FakeJobs(conflicts=1000)
    rec = fake_recorder(jobs)
    with caplog.at_level(logging.WARNING, logger="bunshin"):
        rec.observe(owned(preempted(), "uid-1"))
        await rec.settled()
    assert jobs.patches == recorder.MAX_ATTEMPTS and rec.failures == 1
    assert "could not record a preemption" in caplog.text
    # seen again (its next event, or the next list), it is tried again
    jobs.conflicts = 0
    rec.observe(owned(preempted(), "uid-1"))
    await rec.settled()
    assert jobs.record.count == 1


async def test_failures_are_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    jobs = FakeJobs(error=KubeError(503, "ServiceUnavailable", "etcd", kind="Job"))
    rec = fake_recorder(jobs)
    with caplog.at_level(logging.WARNING, logger="bunshin"):
        rec.observe(owned(preempted(), "uid-1"))
        await rec.settled()
    assert rec.failures == 1 and "could not read job" in caplog.text
    jobs.error, jobs.job = None, None  # the Job is gone: nothing to keep it on
    rec.observe(owned(preempted(), "uid-1"))
    await rec.settled()
    assert rec.failures == 1 and jobs.patches == 0


async def test_a_pod_of_another_job_of_that_name_is_not_recorded() -> None:
    jobs = FakeJobs()
    rec = fake_recorder(jobs)
    pod = owned(preempted(), "uid-1")
    pod["metadata"]["ownerReferences"][0]["uid"] = "an-earlier-job"
    rec.observe(pod)
    await rec.settled()
    assert jobs.record.count == 0


async def test_a_pod_that_succeeded_in_its_grace_period_is_taken_out() -> None:
    jobs = FakeJobs()
    rec = fake_recorder(jobs)
    pod = owned(preempted(terminating=True), "uid-1")
    rec.observe(pod)
    await rec.settled()
    assert jobs.record.count == 1
    pod["status"]["phase"] = "Succeeded"
    rec.observe(pod)
    await rec.settled()
    assert jobs.record == PreemptionRecord()


async def test_the_pending_work_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder, "MAX_PENDING", 3)
    jobs = FakeJobs()
    rec = fake_recorder(jobs)
    for i in range(10):  # no await in between: the writer has not started
        rec.observe(owned(preempted(f"p{i}", at=f"2025-03-07T14:{i:02d}:00Z"), f"uid-{i}"))
    await rec.settled()
    assert jobs.record.count == 3 and jobs.patches == 1  # one Job: written in one patch


def test_the_cache_keeps_no_environment() -> None:
    pod = owned(preempted(), "uid-1")
    pod["spec"]["containers"] = [
        {"name": "main", "command": ["train"], "env": [{"name": "TOKEN", "value": "s3cr3t"}]}
    ]
    kept = pod_summary(pod)
    assert "s3cr3t" not in json.dumps(kept) and "train" not in json.dumps(kept)
    from aiinfn_hub.bunshin.job_view import pod_disruption

    assert pod_disruption(kept) is not None
    assert pod_disruption(kept) == pod_disruption(pod)


# -- the informer's callback ---------------------------------------------------------------------


class ListAnswer:
    def __init__(self, body: JSON) -> None:
        self.status = 200
        self._body = json.dumps(body).encode()

    async def read(self) -> bytes:
        return self._body


async def test_the_informer_hands_over_each_object_before_trimming_it() -> None:
    seen: list[JSON] = []

    async def lister(**_: Any) -> ListAnswer:
        return ListAnswer({"metadata": {"resourceVersion": "7"}, "items": [pod_a]})

    def callback(obj: JSON) -> None:
        seen.append(obj)
        if obj["metadata"]["name"] == "bad":
            raise ValueError("a bug of the caller")

    pod_a = {"metadata": {"name": "a", "namespace": "bunshin"}, "spec": {"x": 1}}
    informer = Informer(
        "pods", lister, keep=lambda o: {"metadata": o["metadata"]}, on_object=callback
    )
    await informer._list()
    assert seen == [pod_a] and informer.cache["bunshin/a"] == {"metadata": pod_a["metadata"]}
    for kind, name in (("MODIFIED", "a"), ("ADDED", "bad"), ("DELETED", "a"), ("BOOKMARK", "a")):
        obj = {"metadata": {"name": name, "namespace": "bunshin", "resourceVersion": "8"}}
        informer._apply({"type": kind, "object": obj})
    assert [o["metadata"]["name"] for o in seen] == ["a", "a", "bad"]
    assert set(informer.cache) == {"bunshin/bad"}  # the callback's failure stopped nothing
    plain = Informer("pods", lister)  # without a callback: as before
    await plain._list()
    assert plain.cache["bunshin/a"] == pod_a


# -- over the emulator ---------------------------------------------------------------------------

DANA = Caller("dana", frozenset({"cms"}), frozenset({"custom:bunshin:submit"}))
POD_NAME = f"{NAME}-x7k2p"
BUNSHIN_LABELS = {
    "app.kubernetes.io/managed-by": "bunshin",
    "aiinfn.infn.it/bunshin-user": "dana",
}


def emulated_job() -> JSON:
    """An admitted job with nothing to run right now (``parallelism: 0``): the Job controller
    makes no pod of its own, and the pod of the test plays the one a notebook preempts."""
    manifest = job()
    del manifest["status"], manifest["spec"]["podReplacementPolicy"]
    manifest["metadata"] = {
        key: manifest["metadata"][key] for key in ("name", "labels", "annotations")
    }
    manifest["spec"] |= {
        "parallelism": 0,
        "template": {
            "metadata": {"labels": dict(BUNSHIN_LABELS)},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
            },
        },
    }
    return manifest


def emulated_pod() -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD_NAME,
            "labels": BUNSHIN_LABELS | {"job-name": NAME, "batch.kubernetes.io/job-name": NAME},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["python", "train.py"],
                    "env": [{"name": "WANDB_API_KEY", "value": "s3cr3t"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ],
        },
    }


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60) -> Any:
    """``check()``'s first true answer, tried until ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await check()
        if answer:
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Emulated:
    def __init__(self, kube: KubeRest) -> None:
        self.kube = kube
        self.pod_path = f"/api/v1/namespaces/{JOBS}/pods/{POD_NAME}"
        self.job_path = f"/apis/batch/v1/namespaces/{JOBS}/jobs/{NAME}"

    async def start_job_and_pod(self) -> JSON:
        await self.kube.post(f"/apis/batch/v1/namespaces/{JOBS}/jobs", emulated_job())
        await self.kube.post(f"/api/v1/namespaces/{JOBS}/pods", emulated_pod())

        async def runs() -> JSON | None:
            pod: JSON = await self.kube.get(self.pod_path)
            return pod if (pod.get("status") or {}).get("phase") == "Running" else None

        found: JSON = await eventually(runs, "the job's pod to run")
        return found

    async def preempt(self) -> None:
        """What kube-scheduler does first: the condition, through the status subresource."""
        pod = await self.kube.get(self.pod_path)
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": "default-scheduler: preempting to accommodate a higher priority pod",
            "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        conditions = [*(pod["status"].get("conditions") or []), condition]
        await self.kube.merge_patch(
            f"{self.pod_path}/status", {"status": {"conditions": conditions}}
        )

    async def delete_pod(self) -> None:
        """What it does next; the pod is gone once the kubelet has stopped it."""
        await self.kube.delete(self.pod_path)

        async def gone() -> bool:
            return await self.kube.get_or_none(self.pod_path) is None

        await eventually(gone, "the preempted pod to go")

    async def record(self) -> PreemptionRecord:
        return preemption_record.read(await self.kube.get(self.job_path))


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with start_emulator(tmp_path / "emulator") as running_emulator:
        yield running_emulator


@pytest.fixture
async def emulated(emulator: Emulator) -> AsyncIterator[Emulated]:
    configuration = client.Configuration()
    await config.load_kube_config(
        str(emulator.write_kubeconfig()), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api:
        yield Emulated(KubeRest(api))


async def test_a_preemption_is_recorded_on_the_job_and_outlives_its_pod(
    emulated: Emulated,
) -> None:
    pod = await emulated.start_job_and_pod()
    replicas = [PreemptionRecorder(emulated.kube, JOBS) for _ in range(2)]
    try:
        for replica in replicas:
            replica.start()
        await asyncio.wait_for(asyncio.gather(*(r.settled() for r in replicas)), 60)
        await emulated.preempt()
        await emulated.delete_pod()

        async def written() -> PreemptionRecord | None:
            found = await emulated.record()
            return found if found.count else None

        record = await eventually(written, "the preemption on the Job")
        await asyncio.wait_for(asyncio.gather(*(r.settled() for r in replicas)), 60)
        record = await emulated.record()
        assert record.count == 1 and sum(r.writes for r in replicas) == 1
        (only,) = record.entries
        assert only["pod"] == pod["metadata"]["uid"] and only["node"] == pod["spec"]["nodeName"]
        for replica in replicas:  # what the watch kept of the pods: no environment
            assert replica.informer is not None
            assert "s3cr3t" not in json.dumps(replica.informer.objects())
    finally:
        for replica in replicas:
            await replica.stop()
    # the API's view of the job: the pod is gone, the preemption is not
    data = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
    service = JobService(validate_platform_config(data), MissingHub(), emulated.kube, "jupyterhub")
    view = await service.job(DANA, NAME)
    assert view["pods"] == [] and view["status"] == "queued"
    assert view["reason"].startswith("preempted by a notebook at ")
    assert view["reason"].endswith(", waiting to run again")
    assert [p["node"] for p in view["preemptions"]] == [pod["spec"]["nodeName"]]
    assert view["preemptionNote"].startswith("preempted once by a notebook")


async def test_a_restarted_service_records_what_it_missed_once(emulated: Emulated) -> None:
    await emulated.start_job_and_pod()
    await emulated.preempt()  # while no service runs
    first = PreemptionRecorder(emulated.kube, JOBS)
    first.start()
    try:
        await asyncio.wait_for(first.settled(), 60)  # from its list
        assert (await emulated.record()).count == 1 and first.writes == 1
    finally:
        await first.stop()
    again = PreemptionRecorder(emulated.kube, JOBS)
    again.start()
    try:
        await asyncio.wait_for(again.settled(), 60)
        await emulated.delete_pod()
        await asyncio.wait_for(again.settled(), 60)
        assert (await emulated.record()).count == 1 and again.writes == 0
    finally:
        await again.stop()
    assert again.informer is not None and not again._tasks


class MissingHub:
    async def user(self, username: str) -> JSON:
        raise AssertionError("showing a job asks the hub nothing")
