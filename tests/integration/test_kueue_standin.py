"""The local platform's Kueue stand-in against the emulated cluster."""

from __future__ import annotations

from typing import Any

import requests
from hub_helpers import until

from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.kueue_standin import KueueStandIn

NS = "default"


def job(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {"kueue.x-k8s.io/queue-name": "cms"},
            "annotations": annotations or {},
        },
        "spec": {
            "suspend": True,
            "template": {
                "metadata": {"annotations": {"emulator.aiinfn.dev/outcome": "succeed"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                },
            },
        },
    }


async def test_suspended_jobs_are_admitted_once_and_cancelled_ones_never(
    emulator: Emulator,
) -> None:
    base = f"{emulator.url}/apis/batch/v1/namespaces/{NS}/jobs"
    for body in (job("first"), job("cancelled", {"aiinfn.infn.it/cancelled": "alice"})):
        created = requests.post(
            base, json=body, headers=emulator.auth_headers, verify=emulator.ca_file, timeout=10
        )
        assert created.status_code == 201
    standin = KueueStandIn(emulator.access)
    assert standin.admit_pending() == ["first"]
    assert standin.admit_pending() == []  # its Workload exists now
    jobs = {j["metadata"]["name"]: j for j in emulator.objects("Job", NS)}
    assert jobs["first"]["spec"]["suspend"] is False
    assert jobs["cancelled"]["spec"]["suspend"] is True
    (workload,) = emulator.objects("Workload", NS)
    assert (
        workload["metadata"]["labels"]["kueue.x-k8s.io/job-uid"] == jobs["first"]["metadata"]["uid"]
    )
    assert workload["status"]["conditions"][0]["type"] == "Admitted"

    def done() -> bool:
        status = next(j for j in emulator.objects("Job", NS) if j["metadata"]["name"] == "first")
        return bool((status.get("status") or {}).get("succeeded"))

    await until(done)
