"""A minimal stand-in for Kueue's job admission, for the local platform and its tests.

Kueue is not part of the emulated cluster. This loop plays the one part of it Bunshin needs
to run jobs locally: for every suspended Job with a ``kueue.x-k8s.io/queue-name`` label it
creates an admitted ``Workload`` (labelled ``kueue.x-k8s.io/job-uid``, as Kueue does) and
unsuspends the Job, first come first served, without quotas. A Workload made inactive
(``spec.active: false``, what Bunshin's cancel sets) is never admitted again.

What it models, and what it leaves out:

- Admission happens once per Job (its Workload is the record); it never suspends a Job
  again, never evicts or deactivates a Workload and never touches the Job's pods or status.
- kube-scheduler preempting pods of an admitted Job (a notebook taking a GPU back) is not
  Kueue's business, as with real Kueue without ``waitForPodsReady``: the Workload stays
  admitted, the Job stays unsuspended, and the Job controller's replacement pod waits in
  Pending until there is room; nothing here re-admits, re-queues or fails the Job.
- Not modelled: ClusterQueue/LocalQueue quotas and flavors (no node selectors are injected),
  ``status.admission``, the QuotaReserved/PodsReady/Evicted/Finished conditions,
  ``waitForPodsReady`` (which in real Kueue evicts and re-queues a Workload whose pods are not
  all ready in time), Kueue's own preemption between Workloads, and Workload clean-up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from .emulator.access import ApiAccess

log = logging.getLogger("kueue-standin")
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
API = "/apis/kueue.x-k8s.io/v1beta2"


class KueueStandIn:
    """Polls the emulator's API (``api``: its URL, token and CA, ``Emulator.access``) every
    ``interval`` seconds on its own thread."""

    def __init__(self, api: ApiAccess, interval: float = 1.0) -> None:
        self.base_url = api.url.rstrip("/")
        self.interval = interval
        self._headers = api.headers
        self._context = api.ssl_context()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kueue-standin", daemon=True)

    def start(self) -> KueueStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _call(self, method: str, path: str, body: Any = None, patch: bool = False) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method)
        for key, value in self._headers.items():
            request.add_header(key, value)
        if data is not None:
            kind = "application/merge-patch+json" if patch else "application/json"
            request.add_header("Content-Type", kind)
        with urllib.request.urlopen(request, timeout=10, context=self._context) as response:
            return json.loads(response.read() or b"null")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.admit_pending()
            except (urllib.error.URLError, OSError, ValueError) as exc:
                log.debug("kueue stand-in: %s", exc)

    def admit_pending(self) -> list[str]:
        """Admit every waiting Job once; the names admitted."""
        jobs = self._call("GET", f"/apis/batch/v1/jobs?labelSelector={QUEUE_LABEL}")["items"]
        workloads = self._call("GET", f"{API}/workloads")["items"]
        known = {(w["metadata"].get("labels") or {}).get(JOB_UID_LABEL): w for w in workloads}
        admitted = []
        for job in sorted(jobs, key=lambda j: j["metadata"].get("creationTimestamp") or ""):
            meta, spec = job["metadata"], job.get("spec") or {}
            if not spec.get("suspend") or meta.get("uid") in known:
                continue
            if (meta.get("annotations") or {}).get("aiinfn.infn.it/cancelled"):
                continue
            self._admit(job)
            admitted.append(meta["name"])
        return admitted

    def _admit(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        workload_name = f"job-{name}"[:63]
        workload: dict[str, Any] = {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "Workload",
            "metadata": {
                "name": workload_name,
                "namespace": namespace,
                "labels": {JOB_UID_LABEL: meta["uid"]},
            },
            "spec": {
                "active": True,
                "queueName": meta["labels"][QUEUE_LABEL],
                "podSets": [{"name": "main", "count": int(job["spec"].get("parallelism") or 1)}],
            },
        }
        self._call("POST", f"{API}/namespaces/{namespace}/workloads", workload)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        condition = {
            "type": "Admitted",
            "status": "True",
            "reason": "Admitted",
            "message": "admitted by the local Kueue stand-in",
            "lastTransitionTime": now,
        }
        self._call(
            "PATCH",
            f"{API}/namespaces/{namespace}/workloads/{workload_name}/status",
            {"status": {"conditions": [condition]}},
            patch=True,
        )
        self._call(
            "PATCH",
            f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            {"spec": {"suspend": False}},
            patch=True,
        )
        log.info("admitted job %s/%s", namespace, name)
