"""What the Bunshin integration tests share: the service's hub configuration (and the jobs'
own namespace), a signed-in user with an API token, and Kueue's part (admitting a queued
Job)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import requests
from iam_platform import Hub, sign_in, wait_for

from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.processes import free_port

JOBS_NAMESPACE = "bunshin"  # examples/platform.yaml's jobs.namespace: not the servers'

BUNSHIN_CONFIG = """
from aiinfn_hub.bunshin.hub_config import configure_bunshin
configure_bunshin(
    c,
    {platform!r},
    "http://127.0.0.1:{port}",
    environment={{"KUBECONFIG": {kubeconfig!r}, "PATH": {path!r}}},
    offload_groups=["lhcb-flashsim"],
    admin_groups=["platform-admins"],
)
"""


def bunshin_config(emulator: Emulator, platform: Path) -> str:
    """Hub configuration adding the Bunshin service (hub-managed) for ``platform``; creates
    the jobs' namespace in the cluster, as an administrator does."""
    created = requests.post(
        f"{emulator.url}/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": JOBS_NAMESPACE}},
        headers=emulator.auth_headers,
        verify=emulator.ca_file,
        timeout=10,
    )
    assert created.status_code in (201, 409), created.text
    return BUNSHIN_CONFIG.format(
        platform=str(platform),
        port=free_port(),
        kubeconfig=str(emulator.write_kubeconfig()),
        path=os.environ["PATH"],
    )


def wait_for_bunshin(hub: Hub) -> None:
    wait_for(
        lambda: (
            requests.get(f"{hub.url}/services/bunshin/api/v1/queues", timeout=5).status_code == 403
        ),
        30,
        "the Bunshin service",
    )


class User:
    """A signed-in user with a running server and an API token."""

    def __init__(self, hub: Hub, name: str, password: str) -> None:
        self.hub, self.name = hub, name
        self.session, page = sign_in(hub, name, password)
        assert page.status_code == 200
        response = hub.admin("POST", f"/users/{name}/tokens", json={"note": "bunshin tests"})
        assert response.status_code == 201, response.text
        self.token = response.json()["token"]

    def start_server(self, options: dict[str, Any] | None = None) -> None:
        """Start the default server with spawn ``options`` (the form's fields), unless it runs."""
        model = self.hub.admin_get(f"/users/{self.name}")
        if model["servers"].get("", {}).get("ready"):
            return
        response = self.hub.admin("POST", f"/users/{self.name}/server", json=options or {})
        assert response.status_code in (201, 202), response.text
        wait_for(
            lambda: self.hub.admin_get(f"/users/{self.name}")["servers"].get("", {}).get("ready"),
            60,
            f"{self.name}'s server",
        )

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.hub.url}/services/bunshin/api/v1/{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=30,
            **kwargs,
        )


def admit(hub: Hub, job_id: str) -> None:
    """Kueue's part: an admitted Workload for the Job, then the Job unsuspended."""
    base, auth, namespace = hub.emulator.url, hub.emulator.auth_headers, JOBS_NAMESPACE
    ca = hub.emulator.ca_file
    job = requests.get(
        f"{base}/apis/batch/v1/namespaces/{namespace}/jobs/{job_id}",
        headers=auth,
        verify=ca,
        timeout=10,
    )
    job.raise_for_status()
    uid = job.json()["metadata"]["uid"]
    workload = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": f"job-{job_id}",
            "namespace": namespace,
            "labels": {"kueue.x-k8s.io/job-uid": uid},
        },
        "spec": {"queueName": "cms", "podSets": [{"name": "main", "count": 1}]},
    }
    created = requests.post(
        f"{base}/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads",
        json=workload,
        headers=auth,
        verify=ca,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Admitted",
                    "status": "True",
                    "reason": "Admitted",
                    "message": "admitted by the test's Kueue",
                    "lastTransitionTime": now,
                }
            ]
        }
    }
    requests.patch(
        f"{base}/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads/job-{job_id}/status",
        json=status,
        headers={"Content-Type": "application/merge-patch+json", **auth},
        verify=ca,
        timeout=10,
    ).raise_for_status()
    requests.patch(
        f"{base}/apis/batch/v1/namespaces/{namespace}/jobs/{job_id}",
        json={"spec": {"suspend": False}},
        headers={"Content-Type": "application/merge-patch+json", **auth},
        verify=ca,
        timeout=10,
    ).raise_for_status()


def status_of(user: User, job_id: str) -> str:
    response = user.call("GET", f"jobs/{job_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])
