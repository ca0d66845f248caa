"""``JobService`` without HTTP: its use cases called with a ``Caller`` value over the emulated
cluster, and the Hub API answered from memory. The rules the API and the page share live
here, so they are tested here once (cancel of a finished job, visibility, scopes, quota, logs,
the configuration in force)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulated_server import (
    JOBS,
    SERVERS,
    MemoryHub,
    dana_running,
    platform,
    platform_data,
    start_emulator,
)

from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.service import JobService
from aiinfn_hub.config import PlatformConfig
from aiinfn_hub.config.provider import ConfigProvider
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.kube.rest import KubeRest
from aiinfn_hub.services.caller import Caller
from aiinfn_hub.services.errors import ServiceError

SUBMIT = "custom:bunshin:submit"
DANA = Caller("dana", frozenset({"cms"}), frozenset({SUBMIT}))
ERIN = Caller("erin", frozenset({"cms"}), frozenset({SUBMIT}))
ADMIN = Caller("root", frozenset(), frozenset({"custom:bunshin:admin"}))


@dataclass
class Cluster:
    emulator: Emulator
    kube: KubeRest
    hub: MemoryHub

    def service(self, cfg: PlatformConfig | ConfigProvider | None = None) -> JobService:
        return JobService(cfg or platform(), self.hub, self.kube, SERVERS, {SERVERS: "servers"})

    async def finish(self, job_id: str) -> None:
        """The Job controller's part: the job succeeded."""
        done = "2030-01-01T00:00:00Z"
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": done}
            for kind in ("SuccessCriteriaMet", "Complete")
        ]
        await self.kube.merge_patch(
            f"/apis/batch/v1/namespaces/{JOBS}/jobs/{job_id}/status",
            {"status": {"startTime": done, "completionTime": done, "conditions": conditions}},
        )

    async def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.kube.get(
            f"/apis/batch/v1/namespaces/{JOBS}/jobs/{job_id}"
        )
        return found


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with start_emulator(tmp_path / "emulator") as running:
        yield running


@pytest.fixture
async def cluster(emulator: Emulator) -> AsyncIterator[Cluster]:
    """dana's running server in the servers' namespace."""
    async with dana_running(emulator) as (kube, pod):
        yield Cluster(emulator, kube, MemoryHub(pod["metadata"]["uid"]))


async def test_a_submitted_job_is_listed_shown_and_queued(cluster: Cluster) -> None:
    service = cluster.service()
    job = await service.submit(DANA, {"command": ["python", "train.py"], "name": "train"})
    assert job["status"] == "queued" and job["user"] == "dana" and job["name"] == "train"
    assert [j["id"] for j in await service.list_jobs(DANA)] == [job["id"]]
    shown = await service.job(DANA, job["id"])
    assert shown["command"] == ["python", "train.py"] and shown["project"] == "cms"
    queues = await service.queues(DANA)
    assert queues["queues"][0]["project"] == "cms"
    assert queues["queues"][0]["yourActiveJobs"] == 1 and queues["canOffload"] is False


async def test_cancel_refuses_a_finished_job_with_one_message(cluster: Cluster) -> None:
    """The rule the API (DELETE jobs/{id}) and the page (POST jobs/{id}/cancel) both call."""
    service = cluster.service()
    done = await service.submit(DANA, {"command": ["true"]})
    await cluster.finish(done["id"])
    with pytest.raises(BunshinError) as refused:
        await service.cancel(DANA, done["id"])
    assert (refused.value.status, refused.value.code) == (409, "finished")
    assert refused.value.message == f"job {done['id']} has already succeeded"
    annotations = (await cluster.job(done["id"]))["metadata"].get("annotations") or {}
    assert "aiinfn.infn.it/cancelled" not in annotations  # nothing was changed

    running = await service.submit(DANA, {"command": ["sleep", "60"]})
    cancelled = await service.cancel(DANA, running["id"])
    assert cancelled["status"] == "cancelled" and "dana" in cancelled["reason"]
    with pytest.raises(BunshinError) as again:
        await service.cancel(DANA, running["id"])
    assert again.value.message == f"job {running['id']} has already cancelled"


async def test_others_jobs_do_not_exist_for_a_caller_but_admins_see_them(
    cluster: Cluster,
) -> None:
    service = cluster.service()
    job_id = (await service.submit(DANA, {"command": ["sleep", "60"]}))["id"]
    for use in (
        service.job(ERIN, job_id),
        service.cancel(ERIN, job_id),
        service.logs(ERIN, job_id, None).__aenter__(),
    ):
        with pytest.raises(BunshinError) as hidden:
            await use
        assert (hidden.value.status, hidden.value.message) == (404, f"no job {job_id!r}")
    with pytest.raises(BunshinError) as forbidden:
        await service.list_jobs(ERIN, user="dana")
    assert forbidden.value.status == 403
    assert await service.list_jobs(ERIN) == []
    assert [j["id"] for j in await service.list_jobs(ADMIN, user="dana")] == [job_id]
    assert [j["id"] for j in await service.list_jobs(ADMIN, everyone=True)] == [job_id]
    assert (await service.cancel(ADMIN, job_id))["reason"] == "cancelled by root"


async def test_submissions_need_the_scope_a_running_server_and_stay_within_the_quota(
    cluster: Cluster,
) -> None:
    service = cluster.service()
    with pytest.raises(BunshinError) as no_scope:
        await service.submit(Caller("dana", frozenset({"cms"})), {"command": ["true"]})
    assert no_scope.value.status == 403 and "scope needed" in no_scope.value.message
    with pytest.raises(BunshinError) as no_server:
        await service.submit(ERIN, {"command": ["true"]})
    assert no_server.value.code == "no-server"
    with pytest.raises(BunshinError) as no_offload:
        await service.submit(DANA, {"command": ["true"], "offload": True})
    assert no_offload.value.status == 403 and "may not offload" in no_offload.value.message
    for _ in range(2):
        await service.submit(DANA, {"command": ["sleep", "60"]})
    with pytest.raises(BunshinError) as over:
        await service.submit(DANA, {"command": ["sleep", "60"]})
    assert over.value.code == "over-quota" and "the limit is 2" in over.value.message
    assert len(await service.list_jobs(DANA)) == 2


async def test_json_bodies_are_bounded_and_decoded_before_the_scope_is_checked(
    cluster: Cluster,
) -> None:
    service = cluster.service()
    nobody = Caller("dana", frozenset({"cms"}))
    with pytest.raises(ServiceError) as bad:
        await service.submit_json(nobody, b"{not json")
    assert (bad.value.status, bad.value.code) == (400, "bad-request")
    limit = platform().jobs.max_request_bytes
    with pytest.raises(ServiceError) as large:
        await service.submit_json(nobody, b" " * (limit + 1))
    assert large.value.status == 413
    created = await service.submit_json(DANA, b'{"command": ["true"]}')
    assert created["status"] == "queued"


async def test_logs_hold_one_of_the_callers_two_reading_slots(cluster: Cluster) -> None:
    service = cluster.service()
    job_id = (await service.submit(DANA, {"command": ["true"]}))["id"]
    async with service.logs(DANA, job_id, None) as first, service.logs(DANA, job_id, 5):
        assert [pod async for pod in first] == [] and first.truncated is False
        with pytest.raises(BunshinError) as busy:
            async with service.logs(DANA, job_id, None):
                pass
        assert busy.value.status == 429
    async with service.logs(DANA, job_id, None) as again:  # released
        assert again.message == ""


async def test_the_overview_says_what_the_form_offers(cluster: Cluster) -> None:
    service = cluster.service()
    await service.submit(DANA, {"command": ["sleep", "60"]})
    dana = await service.overview(DANA)
    assert dana.server_running and dana.active and len(dana.jobs) == 1
    assert dana.accelerators and not dana.can_offload
    # what "same as my server" means (dana's server has no GPU), and the retries allowed
    assert dana.server_accelerator is None and dana.server_units == 0
    assert (dana.default_retries, dana.max_retries) == (0, 3)
    erin = await service.overview(ERIN)
    assert not erin.server_running and erin.jobs == [] and not erin.active


async def test_each_use_case_takes_the_configuration_in_force(
    cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file is read again when it changes; a namespace that became a protected one is
    refused (and logged once) instead of used."""
    path = tmp_path / "platform.yaml"
    data = platform_data()
    path.write_text(yaml.safe_dump(data))
    service = cluster.service(ConfigProvider(path))
    await service.submit(DANA, {"command": ["sleep", "60"]})
    data["jobs"]["maxActiveJobsPerUser"] = 1
    path.write_text(yaml.safe_dump(data) + "\n")  # another size: a new version of the file
    with pytest.raises(BunshinError) as over:
        await service.submit(DANA, {"command": ["sleep", "60"]})
    assert "the limit is 1" in over.value.message
    data["jobs"]["namespace"] = SERVERS
    path.write_text(yaml.safe_dump(data) + "\n\n")
    caplog.set_level(logging.ERROR, logger="bunshin")
    for _ in range(2):
        with pytest.raises(BunshinError) as refused:
            await service.list_jobs(DANA)
        assert (refused.value.status, refused.value.code) == (500, "misconfigured")
    assert sum("configuration in force is refused" in r.message for r in caplog.records) == 1


async def test_cluster_failures_name_the_object_in_the_log_not_to_the_user(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    service = cluster.service()
    emulator = cluster.emulator
    emulator.call(lambda: emulator.faults.fail_next("create", "jobs", code=500))
    caplog.set_level(logging.WARNING, logger="bunshin")
    with pytest.raises(BunshinError) as failed:
        await service.submit(DANA, {"command": ["true"]})
    assert failed.value.status == 503 and "nothing was left half-made" in failed.value.message
    assert "bunshin/" not in failed.value.message
    (record,) = [r for r in caplog.records if "creating the job failed" in r.message]
    assert f"Job {JOBS}/bunshin-dana-" in record.message and ": 500 " in record.message
    assert await service.list_jobs(DANA) == []
