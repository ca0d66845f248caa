"""The service's I/O: the Hub API (whose server, which pod) and Kubernetes (jobs, pods, logs).

Thin on purpose: decisions live in ``policy`` and ``job``; here calls are made and failures
become :class:`BunshinError` with what the user can do about them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..config import PlatformConfig
from ..kube.rest import KubeError, KubeRest
from ..spawner.pod_settings import LABEL_PREFIX
from .errors import BunshinError
from .job import (
    CANCELLED,
    MANAGED_BY,
    USER_LABEL,
    job_manifest,
    job_name,
    sandbox_configmap,
    user_label,
)
from .juicefs import PASSWORD_KEY, JuiceFSPlan, credentials_secret
from .policy import JobPlan

JSON = dict[str, Any]
WORKLOAD_VERSIONS = ("v1beta2", "v1beta1")
SECRET_RECHECK_SECONDS = 60.0  # a Secret written by us is trusted this long before a re-read
log = logging.getLogger("bunshin")


def unavailable(what: str, error: KubeError) -> BunshinError:
    if error.status == 0 or error.status >= 500:
        return BunshinError(
            503,
            "unavailable",
            f"the cluster did not answer while {what} ({error.reason}); nothing was left "
            "half-made, try again in a moment",
        )
    return BunshinError(500, "cluster-refused", f"the cluster refused {what}: {error.message}")


class HubClient:
    """Reads users' servers from the Hub API with the service's own token."""

    def __init__(self, api_url: str, token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.http = AsyncHTTPClient()

    async def server(self, username: str, server: str) -> JSON:
        """The user's named server model (with ``state``), or 409 when it is not running."""
        request = HTTPRequest(
            f"{self.api_url}/users/{quote(username, safe='')}",
            headers={"Authorization": f"token {self.token}"},
            request_timeout=15,
        )
        try:
            response = await self.http.fetch(request)
        except HTTPClientError as exc:
            if exc.code == 404:
                raise BunshinError(404, "not-found", "no such user on the hub") from None
            raise BunshinError(503, "unavailable", "the hub did not answer; try again") from None
        except OSError:
            raise BunshinError(503, "unavailable", "the hub did not answer; try again") from None
        model = json.loads(response.body)
        found = (model.get("servers") or {}).get(server)
        label = f"server {server!r}" if server else "your default server"
        if not found or not found.get("ready"):
            raise BunshinError(
                409, "no-server", f"{label} is not running: start it, then clone it as a job"
            )
        state: JSON = found.get("state") or {}
        if not state.get("pod_name"):
            raise BunshinError(409, "no-server", f"{label} has no pod to clone")
        return dict(found)


class Jobs:
    """Jobs, their pods, sandboxes and Kueue workloads in the jobs' namespace."""

    def __init__(self, kube: KubeRest, config: PlatformConfig) -> None:
        self.kube = kube
        self.config = config
        self._secrets_checked: dict[str, tuple[str, float]] = {}
        self._secret_locks: dict[str, asyncio.Lock] = {}

    @property
    def namespace(self) -> str:
        return self.config.jobs.namespace

    def _jobs_path(self, name: str = "") -> str:
        base = f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
        return f"{base}/{name}" if name else base

    async def pod(self, namespace: str, name: str) -> JSON:
        try:
            pod: JSON = await self.kube.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        except KubeError as exc:
            if exc.status == 404:
                raise BunshinError(409, "no-server", "the server's pod is gone") from None
            raise unavailable("reading your server's pod", exc) from None
        return pod

    async def of_user(self, username: str | None) -> list[JSON]:
        selector = f"app.kubernetes.io/managed-by={MANAGED_BY}"
        if username is not None:
            selector += f",{USER_LABEL}={user_label(username)}"
        try:
            answer = await self.kube.get(self._jobs_path(), labelSelector=selector)
        except KubeError as exc:
            raise unavailable("listing jobs", exc) from None
        items: list[JSON] = answer.get("items") or []
        if username is not None:  # the label may be a hash: confirm with the exact name
            items = [j for j in items if owner(j) == username]
        return items

    async def get(self, name: str) -> JSON:
        try:
            job: JSON = await self.kube.get(self._jobs_path(name))
        except KubeError as exc:
            if exc.status == 404:
                raise BunshinError(404, "not-found", f"no job {name!r}") from None
            raise unavailable("reading the job", exc) from None
        if (job["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") != MANAGED_BY:
            raise BunshinError(404, "not-found", f"no job {name!r}")
        return job

    async def pods(self, selector_user: str | None = None) -> list[JSON]:
        selector = f"app.kubernetes.io/managed-by={MANAGED_BY}"
        if selector_user is not None:
            selector += f",{USER_LABEL}={user_label(selector_user)}"
        try:
            answer = await self.kube.get(
                f"/api/v1/namespaces/{self.namespace}/pods", labelSelector=selector
            )
        except KubeError as exc:
            raise unavailable("listing the jobs' pods", exc) from None
        items: list[JSON] = answer.get("items") or []
        return items

    async def workloads(self) -> list[JSON]:
        """Kueue Workloads of the namespace (v1beta2, else v1beta1; none without Kueue)."""
        for version in WORKLOAD_VERSIONS:
            try:
                answer = await self.kube.get(
                    f"/apis/kueue.x-k8s.io/{version}/namespaces/{self.namespace}/workloads"
                )
            except KubeError as exc:
                if exc.status == 404:
                    continue
                raise unavailable("reading the queue", exc) from None
            items: list[JSON] = answer.get("items") or []
            return items
        return []

    async def log(self, pod: str, tail: int | None, limit: int) -> tuple[str, bool]:
        """At most ``limit`` bytes of the pod's log (the last ``tail`` lines when given), and
        whether it was cut. The API server stops at ``limitBytes``: a few bytes more than
        wanted (a character's worth, which a decoder may drop when cut in half) tell a cut log
        from one of exactly ``limit`` bytes."""
        query: dict[str, Any] = {"container": "main", "limitBytes": limit + 4}
        if tail is not None:
            query["tailLines"] = tail
        try:
            text: str = await self.kube.call(
                "GET", f"/api/v1/namespaces/{self.namespace}/pods/{pod}/log", query=query, text=True
            )
        except KubeError as exc:
            if exc.status in (400, 404):
                return "", False  # not started yet, or gone
            raise unavailable("reading the logs", exc) from None
        data = text.encode()
        if len(data) <= limit:
            return text, False
        return data[:limit].decode(errors="ignore"), True

    async def create(self, plan: JobPlan) -> JSON:
        """Create the suspended Job, then its sandbox; undo the Job if the sandbox fails.

        An offloaded job with JuiceFS folders first gets its project's credentials Secret.
        """
        if plan.juicefs is not None:
            await self.ensure_juicefs_secret(plan.juicefs)
        for _ in range(3):
            name = f"{_job_prefix(plan.user)}-{secrets.token_hex(3)}"
            manifest = job_manifest(plan, self.config, name)
            try:
                job: JSON = await self.kube.post(self._jobs_path(), manifest)
                break
            except KubeError as exc:
                if exc.status == 409:
                    continue  # the random suffix is taken: draw another
                raise unavailable("creating the job", exc) from None
        else:
            raise BunshinError(503, "unavailable", "could not find a free job name; try again")
        if plan.sandbox:
            try:
                await self.kube.post(
                    f"/api/v1/namespaces/{self.namespace}/configmaps",
                    sandbox_configmap(plan, job),
                )
            except KubeError as exc:
                await self._undo(job)
                raise unavailable("storing the sandbox files", exc) from None
        return job

    async def ensure_juicefs_secret(self, plan: JuiceFSPlan) -> None:
        """Write the project's JuiceFS Secret when it is missing or stale (passwords rotate).

        The Secret is the service's: one that exists without our label is never overwritten.
        One writer per project at a time; a race with another replica (409) is read again.
        """
        settings = self.config.jobs.offload.juicefs
        assert settings is not None
        password = read_password(Path(settings.credentials_dir), plan.project)
        wanted = credentials_secret(settings, plan.project, self.namespace, password, MANAGED_BY)
        digest = json.dumps(wanted, sort_keys=True)
        lock = self._secret_locks.setdefault(plan.project, asyncio.Lock())
        async with lock:
            seen_digest, seen_at = self._secrets_checked.get(plan.project, ("", 0.0))
            if seen_digest == digest and time.monotonic() - seen_at < SECRET_RECHECK_SECONDS:
                return
            for attempt in range(3):
                try:
                    await self._write_secret(plan.secret, wanted)
                    break
                except KubeError as exc:
                    if exc.status == 409 and attempt < 2:
                        continue  # created or changed meanwhile: read it again
                    raise unavailable(
                        "writing the project's file system credentials", exc
                    ) from None
            self._secrets_checked[plan.project] = (digest, time.monotonic())

    async def _write_secret(self, name: str, wanted: JSON) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/secrets/{name}"
        try:
            current: JSON | None = await self.kube.get(path)
        except KubeError as exc:
            if exc.status != 404:
                raise unavailable("reading the project's file system credentials", exc) from None
            current = None
        if current is None:
            await self.kube.post(f"/api/v1/namespaces/{self.namespace}/secrets", wanted)
            return
        labels = current["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/managed-by") != MANAGED_BY:
            log.error("Secret %s/%s exists and is not Bunshin's", self.namespace, name)
            raise BunshinError(
                500,
                "misconfigured",
                "the project's file system credentials cannot be written (a Secret of that "
                "name belongs to someone else); tell the platform administrators",
            )
        wanted_labels = wanted["metadata"]["labels"]
        if current.get("data") != wanted["data"] or any(
            labels.get(k) != v for k, v in wanted_labels.items()
        ):
            replacement = json.loads(json.dumps(wanted))
            replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.kube.call("PUT", path, body=replacement)

    async def delete(self, job: JSON) -> None:
        """Delete a job with its pods and sandbox (background propagation)."""
        try:
            await self.kube.delete(self._jobs_path(job["metadata"]["name"]))
        except KubeError as exc:
            if exc.status != 404:
                raise unavailable("removing a job", exc) from None

    async def _undo(self, job: JSON) -> None:
        try:
            await self.kube.delete(self._jobs_path(job["metadata"]["name"]))
        except KubeError as exc:  # an admin finds it labelled as ours; say so in the log
            log.error("could not remove job %s after a failure: %s", job["metadata"]["name"], exc)

    async def cancel(self, job: JSON, by: str) -> JSON:
        try:
            updated: JSON = await self.kube.merge_patch(
                self._jobs_path(job["metadata"]["name"]),
                {"metadata": {"annotations": {CANCELLED: by}}, "spec": {"suspend": True}},
            )
        except KubeError as exc:
            raise unavailable("cancelling the job", exc) from None
        await self._deactivate_workloads(updated)
        return updated

    async def _deactivate_workloads(self, job: JSON) -> None:
        """Tell Kueue the job is over: its Workload inactive, so it is never admitted again."""
        uid = job["metadata"].get("uid")
        for workload in await self.workloads():
            if (workload["metadata"].get("labels") or {}).get("kueue.x-k8s.io/job-uid") != uid:
                continue
            version = workload.get("apiVersion", "kueue.x-k8s.io/v1beta2").split("/")[-1]
            path = (
                f"/apis/kueue.x-k8s.io/{version}/namespaces/{self.namespace}/workloads/"
                f"{workload['metadata']['name']}"
            )
            try:
                await self.kube.merge_patch(path, {"spec": {"active": False}})
            except KubeError as exc:
                if exc.status != 404:
                    raise unavailable("deactivating the job's queue entry", exc) from None


def owner(job: JSON) -> str:
    """The exact hub username of a job's owner."""
    return str((job["metadata"].get("annotations") or {}).get(f"{LABEL_PREFIX}/user", ""))


def read_password(folder: Path, project: str) -> str | None:
    """The metadata engine's password for ``project``: ``<project>.meta-password``, else
    ``meta-password``, else none. Read at each use so a rotated Secret takes effect."""
    for name in (f"{project}.{PASSWORD_KEY}", PASSWORD_KEY):
        try:
            return (folder / name).read_text().strip() or None
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("cannot read %s: %s", folder / name, exc)
            raise BunshinError(
                500,
                "misconfigured",
                "the service cannot read the project's file system credentials; tell the "
                "platform administrators",
            ) from None
    return None


def _job_prefix(username: str) -> str:
    return job_name(username, "x")[:-2]
