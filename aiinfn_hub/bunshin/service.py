"""Bunshin's use cases: submit, list, show, read the logs of and cancel jobs, the queues, and
the overview the page shows. One rule for every caller: the JSON API, the HTML pages and the
benchmark call these methods with a :class:`~aiinfn_hub.services.caller.Caller`; nothing here
knows about HTTP, and the manifests and names are chosen here, not by the cluster adapter.

Who may do what: ``custom:bunshin:submit`` to submit, ``custom:bunshin:offload`` to offload,
``custom:bunshin:admin`` (or hub admin, or ``jobs.adminGroup``) to see and cancel everyone's
jobs. Others' jobs do not exist for a caller (404, so their names do not leak).

Abuse: one user's submissions are checked and created one at a time (and counted again after
the create, for several replicas), finished jobs beyond ``maxFinishedJobsPerUser`` are removed
oldest first, logs are capped per pod and per answer, and one user reads logs in at most
``MAX_LOG_READS_PER_USER`` requests at once.

Configuration: one snapshot per use case (``snapshot()``); each snapshot's ``jobs.namespace``
is checked against the hub's and the servers' namespaces as at start, so a configuration
reloaded while serving cannot put jobs next to the users' tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ..config import Accelerator, PlatformConfig
from ..kube.rest import KubeError, KubeRest
from ..platform import entitlements, placement
from ..platform import vocabulary as v
from ..platform.entitlements import UserContext
from ..services.bodies import json_body
from ..services.caller import Caller
from ..services.config_source import ConfigSource, as_config_source
from ..services.errors import ServiceError
from .cluster import JobCluster
from .errors import BunshinError, cluster_error
from .job import (
    CANCELLED,
    MANAGED_BY,
    USER_LABEL,
    job_manifest,
    job_name,
    release_patch,
    sandbox_configmap,
    unreleased,
    user_label,
)
from .job_view import job_status, job_view
from .juicefs_secret import JuiceFSCredentials
from .namespaces import DEFAULT_SERVERS_NAMESPACE, NamespaceError, check_jobs_namespace
from .policy import JobContext, JobPlan, plan_job, server_accelerator
from .request import parse_request
from .scopes import ADMIN, OFFLOAD, SUBMIT

JSON = dict[str, Any]
FINISHED = ("succeeded", "failed", "cancelled")
VIRTUAL_NODES_TTL = 60.0  # seconds the names of the virtual nodes are reused
ACTIVE = ("queued", "admitted", "running")
MAX_LOG_READS_PER_USER = 2
JOB_CONTAINER = "main"  # the one container of a job's pods (``job.job_container``)
JOB_NAME_LABEL = "job-name"  # set by the Job controller on the pods
NAME_ATTEMPTS = 3  # random suffixes tried before giving up (a clash is one in 16 million)
FAILURE_LOG_LINES = 20  # the end of a failed pod's log that the job's view shows
FAILURE_LOG_BYTES = 4096  # ... at most this many bytes of it
FAILURE_LOGS_KEPT = 512  # failed pods' log ends kept in memory (they never change)
log = logging.getLogger("bunshin")


class HubUsers(Protocol):
    """What the service asks the hub (``services.hub_api.HubClient``)."""

    async def user(self, username: str) -> JSON: ...


class UserLocks:
    """One asyncio lock per user, forgotten once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name, (asyncio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


@dataclass(frozen=True)
class Overview:
    """What the page shows a user: their jobs and what the submission form offers."""

    user: str
    jobs: list[JSON]
    accelerators: list[Accelerator]
    can_offload: bool
    offload_keeps_storage: bool  # offloaded jobs get JuiceFS folders
    offload_local_first: bool  # offloaded jobs run here while there is room
    server_running: bool
    # the running server's accelerator (what "same as my server" means): model, units
    server_accelerator: Accelerator | None = None
    server_units: int = 0
    max_retries: int = 0  # most retries a job may ask for
    default_retries: int = 0  # retries of a job that does not ask

    @property
    def active(self) -> bool:
        """Whether some job may still change status (queued, admitted or running)."""
        return any(j["status"] in ACTIVE for j in self.jobs)


class JobLogs:
    """A job's pods with their logs, read one pod at a time within the caps: iterate it, then
    ``truncated`` and ``message`` say whether some log was cut."""

    def __init__(self, job_id: str, pods: AsyncIterator[JSON], config: PlatformConfig) -> None:
        self.job_id = job_id
        self.truncated = False
        self._pods = pods
        self._jobs = config.jobs

    async def __aiter__(self) -> AsyncIterator[JSON]:
        async for pod in self._pods:
            self.truncated = self.truncated or pod["truncated"]
            yield pod

    @property
    def message(self) -> str:
        if not self.truncated:
            return ""
        return (
            f"logs are cut at {self._jobs.max_log_bytes_per_pod} bytes per pod and "
            f"{self._jobs.max_log_bytes_per_response} per answer: ask for a pod's end with tail=N"
        )


def owner(job: JSON) -> str:
    """The exact hub username of a job's owner."""
    return str((job["metadata"].get("annotations") or {}).get(v.USER, ""))


def is_finished(job: JSON) -> bool:
    """Succeeded, failed or cancelled (from the Job alone)."""
    return job_status(job, None, [])[0] in FINISHED


class JobService:
    """Bunshin's rules over the hub (whose server, which pod) and the cluster (``kube``)."""

    def __init__(
        self,
        config: PlatformConfig | ConfigSource,
        hub: HubUsers,
        kube: KubeRest,
        servers_namespace: str = DEFAULT_SERVERS_NAMESPACE,
        protected_namespaces: Mapping[str, str] | None = None,
    ) -> None:
        self.config = as_config_source(config)
        self.hub = hub
        self.cluster = JobCluster(kube)
        self.credentials = JuiceFSCredentials(kube, self.config)
        self.servers_namespace = servers_namespace  # where a server's pod is, when unrecorded
        self.protected_namespaces = dict(protected_namespaces or {})
        self.user_locks = UserLocks()  # one submission of a user at a time (see submit_job)
        self._log_reads: dict[str, int] = {}  # log answers in progress, per user
        self._refused: PlatformConfig | None = None  # last snapshot refused (logged once)
        self._virtual: tuple[float, frozenset[str]] | None = None  # (read at, node names)
        self._nodes_unreadable = False  # logged once
        # the end of each failed pod's log, by (job uid, pod): read once, oldest forgotten
        self._failure_logs: OrderedDict[tuple[str, str], tuple[str, bool]] = OrderedDict()

    # -- configuration and who may do what ------------------------------------------------------

    def snapshot(self) -> PlatformConfig:
        """The configuration in force, for one use case; refused (500) when its jobs'
        namespace is a protected one."""
        config = self.config.current()
        try:
            check_jobs_namespace(config.jobs, self.protected_namespaces)
        except NamespaceError as exc:
            if config is not self._refused:
                log.error("the configuration in force is refused: %s", exc)
                self._refused = config
            raise BunshinError(
                500,
                "misconfigured",
                "jobs cannot run in the namespace the platform configuration names; tell the "
                "platform administrators (jobs.namespace)",
            ) from None
        return config

    def is_admin(self, caller: Caller, config: PlatformConfig) -> bool:
        """Admins see and cancel everyone's jobs: the admin scope, hub admins, the
        configured admin group."""
        group = config.jobs.admin_group
        return ADMIN in caller.scopes or caller.admin or bool(group and group in caller.groups)

    def may_offload(self, caller: Caller, config: PlatformConfig) -> bool:
        """Whether the caller is granted offloading (the platform may still not offer it)."""
        return OFFLOAD in caller.scopes or self.is_admin(caller, config)

    def offers_offload(self, caller: Caller, config: PlatformConfig) -> bool:
        """Whether the platform offers offloading and the caller may use it."""
        return config.jobs.offload.enabled and self.may_offload(caller, config)

    @contextlib.contextmanager
    def reading_logs(self, username: str) -> Iterator[None]:
        """At most ``MAX_LOG_READS_PER_USER`` log answers of one user at a time: each holds up
        to a capped answer in memory, so parallel (or slowly read) requests must be bounded."""
        if self._log_reads.get(username, 0) >= MAX_LOG_READS_PER_USER:
            raise BunshinError(
                429,
                "too-many-requests",
                f"you are already reading logs in {MAX_LOG_READS_PER_USER} requests; wait for "
                "them to finish",
            )
        self._log_reads[username] = self._log_reads.get(username, 0) + 1
        try:
            yield
        finally:
            self._log_reads[username] -= 1
            if not self._log_reads[username]:
                del self._log_reads[username]

    # -- use cases -------------------------------------------------------------------------------

    async def submit_json(self, caller: Caller, raw: bytes) -> JSON:
        """``submit`` of a JSON body (bounded by ``jobs.maxRequestBytes``)."""
        config = self.snapshot()
        body = json_body(raw, config.jobs.max_request_bytes)
        return await self._submit(caller, body, config)

    async def submit(self, caller: Caller, body: Any, config: PlatformConfig | None = None) -> JSON:
        """Check and create a job for the caller; the job as the API shows it. ``config``: the
        snapshot the caller read the body with (e.g. a form whose meaning depends on it)."""
        return await self._submit(caller, body, config or self.snapshot())

    async def _submit(self, caller: Caller, body: Any, config: PlatformConfig) -> JSON:
        if SUBMIT not in caller.scopes and not self.is_admin(caller, config):
            raise BunshinError(403, "forbidden", "you may not submit jobs (scope needed)")
        user = UserContext(caller.name, caller.groups)
        return await self.submit_job(user, self.may_offload(caller, config), body, config)

    async def submit_job(
        self,
        user: UserContext,
        can_offload: bool,
        body: Any,
        config: PlatformConfig | None = None,
    ) -> JSON:
        """The submission itself, once the caller may submit: parse, check, create within the
        user's quota, prune the user's old finished jobs."""
        config = config or self.snapshot()
        request = parse_request(body)
        jobs = config.jobs
        server = await self._running_server(user.name, request.server)
        state = server["state"]
        namespace = state.get("namespace") or self.servers_namespace
        if namespace == jobs.namespace and not jobs.allow_hub_namespace:
            log.error("jobs.namespace %s is the servers' namespace: refusing to clone", namespace)
            raise BunshinError(
                500,
                "misconfigured",
                "jobs cannot run in the servers' namespace on this platform; tell the platform "
                "administrators (jobs.namespace)",
            )
        pod = await self._source_pod(namespace, state["pod_name"])
        # one submission of a user at a time, so the count below cannot be raced by this replica
        async with self.user_locks.hold(user.name):
            active = [j for j in await self.jobs_of(config, user.name) if not is_finished(j)]
            context = JobContext(
                user=user, config=config, can_offload=can_offload, active_jobs=len(active)
            )
            plan = plan_job(request, context, pod, request.server, state.get("pod_uid"))
            job, queue = await self._create(config, plan)
            mine = await self.jobs_of(config, user.name)
            await self.within_quota(config, job, mine)
            job = await self._release(job, queue)
            await self._prune_finished(config, mine)
        log.info("job %s submitted by %s", job["metadata"]["name"], user.name)
        return job_view(job, [], None)

    async def list_jobs(
        self, caller: Caller, user: str | None = None, everyone: bool = False
    ) -> list[JSON]:
        """The caller's jobs, newest first; admins may ask for ``user``'s or ``everyone``'s."""
        config = self.snapshot()
        if (user or everyone) and not self.is_admin(caller, config):
            raise BunshinError(403, "forbidden", "only admins see other users' jobs")
        whose = None if everyone else (user or caller.name)
        return await self._views(config, await self.jobs_of(config, whose), whose)

    async def job(self, caller: Caller, job_id: str) -> JSON:
        """One job the caller may see, with its status and pods."""
        config = self.snapshot()
        job = await self._visible_job(caller, job_id, config)
        (view,) = await self._views(config, [job], owner(job))
        return view

    async def cancel(self, caller: Caller, job_id: str) -> JSON:
        """Cancel a queued or running job (409 when it has already finished): suspended and
        marked, its Kueue Workload made inactive so it is never admitted again."""
        config = self.snapshot()
        job = await self._visible_job(caller, job_id, config)
        status, _ = job_status(job, None, [])
        if status in FINISHED:
            raise BunshinError(409, "finished", f"job {job_id} has already {status}")
        namespace = config.jobs.namespace
        try:
            updated = await self.cluster.merge_patch(
                "Job",
                namespace,
                job_id,
                {"metadata": {"annotations": {CANCELLED: caller.name}}, "spec": {"suspend": True}},
            )
        except KubeError as exc:
            raise cluster_error("cancelling the job", exc) from None
        await self._deactivate_workloads(config, updated)
        log.info("job %s cancelled by %s", job_id, caller.name)
        (view,) = await self._views(config, [updated], owner(updated))
        return view

    @contextlib.asynccontextmanager
    async def logs(self, caller: Caller, job_id: str, tail: int | None) -> AsyncIterator[JobLogs]:
        """The job's pods' logs (the last ``tail`` lines of each when given), to iterate
        within this context: it holds one of the caller's log reading slots."""
        config = self.snapshot()
        job = await self._visible_job(caller, job_id, config)
        (view,) = await self._views(config, [job], owner(job))
        with self.reading_logs(caller.name):
            yield JobLogs(job_id, self._read_logs(config, view["pods"], tail), config)

    async def queues(self, caller: Caller) -> JSON:
        """The caller's projects' queues with their active jobs, and what they may do."""
        config = self.snapshot()
        user = UserContext(caller.name, caller.groups)
        jobs = await self.jobs_of(config, user.name)
        queues = []
        for name, project in user.projects(config):
            active = [
                j
                for j in jobs
                if (j["metadata"].get("labels") or {}).get(v.PROJECT) == name and not is_finished(j)
            ]
            queues.append(
                {
                    "project": name,
                    "displayName": project.display_name,
                    "queue": config.jobs.queue_name.replace("{project}", name),
                    "yourActiveJobs": len(active),
                }
            )
        return {
            "queues": queues,
            "maxActiveJobs": config.jobs.max_active_jobs_per_user,
            "canOffload": self.offers_offload(caller, config),
        }

    async def overview(self, caller: Caller) -> Overview:
        """The page: the caller's jobs, and what the submission form offers them."""
        config = self.snapshot()
        user = UserContext(caller.name, caller.groups)
        jobs = await self._views(config, await self.jobs_of(config, user.name), user.name)
        model, units, running = None, 0, True
        try:
            server = await self._running_server(user.name, "")
        except ServiceError:
            running = False
        else:
            state = server["state"]
            try:
                pod = await self.cluster.read(
                    "Pod", state.get("namespace") or self.servers_namespace, state["pod_name"]
                )
            except KubeError as exc:  # the form still works: it just cannot say the model
                log.warning("cannot read %s's server pod for the page: %s", user.name, exc)
                pod = None
            name, units = server_accelerator(pod or {})
            model = config.accelerator(name) if name else None
        return Overview(
            user=user.name,
            jobs=jobs,
            accelerators=entitlements.allowed_accelerators(config, user),
            can_offload=self.offers_offload(caller, config),
            offload_keeps_storage=config.jobs.offload.juicefs is not None,
            offload_local_first=config.jobs.offload.local_first,
            server_running=running,
            server_accelerator=model,
            server_units=units if model else 0,
            max_retries=config.jobs.max_retries,
            default_retries=config.jobs.backoff_limit,
        )

    # -- reading ---------------------------------------------------------------------------------

    async def _running_server(self, username: str, server: str) -> JSON:
        """The user's named server model (with ``state``), or 409 when it is not running."""
        model = await self.hub.user(username)
        found = (model.get("servers") or {}).get(server)
        label = f"server {server!r}" if server else "your default server"
        if not found or not found.get("ready"):
            raise BunshinError(
                409, "no-server", f"{label} is not running: start it, then clone it as a job"
            )
        if not (found.get("state") or {}).get("pod_name"):
            raise BunshinError(409, "no-server", f"{label} has no pod to clone")
        return dict(found)

    async def _source_pod(self, namespace: str, name: str) -> JSON:
        try:
            pod = await self.cluster.read("Pod", namespace, name)
        except KubeError as exc:
            raise cluster_error("reading your server's pod", exc) from None
        if pod is None:
            raise BunshinError(409, "no-server", "the server's pod is gone")
        return pod

    async def jobs_of(self, config: PlatformConfig, username: str | None) -> list[JSON]:
        """The jobs of ``username`` (everyone's with None)."""
        selector = _selector(username)
        try:
            items = await self.cluster.list_objects("Job", config.jobs.namespace, selector)
        except KubeError as exc:
            raise cluster_error("listing jobs", exc) from None
        if username is not None:  # the label may be a hash: confirm with the exact name
            items = [j for j in items if owner(j) == username]
        return items

    async def _visible_job(self, caller: Caller, job_id: str, config: PlatformConfig) -> JSON:
        """The job if the caller owns it (or is an admin); 404 otherwise (no existence leak)."""
        try:
            job = await self.cluster.read("Job", config.jobs.namespace, job_id)
        except KubeError as exc:
            raise cluster_error("reading the job", exc) from None
        labels = (job or {}).get("metadata", {}).get("labels") or {}
        if job is None or labels.get(v.MANAGED_BY) != MANAGED_BY:
            raise BunshinError(404, "not-found", f"no job {job_id!r}")
        if owner(job) != caller.name and not self.is_admin(caller, config):
            raise BunshinError(404, "not-found", f"no job {job_id!r}")
        return job

    async def _views(
        self, config: PlatformConfig, jobs: list[JSON], user: str | None
    ) -> list[JSON]:
        """The jobs as the API shows them (with their pods and queue state), newest first."""
        namespace = config.jobs.namespace
        try:
            pods = await self.cluster.list_objects("Pod", namespace, _selector(user))
        except KubeError as exc:
            raise cluster_error("listing the jobs' pods", exc) from None
        by_uid = {
            (w["metadata"].get("labels") or {}).get(v.KUEUE_JOB_UID): w
            for w in await self._workloads(config)
        }
        views = []
        now = datetime.now(UTC)  # preemption times say their date when it is not today
        offloaded = [
            j for j in jobs if (j["metadata"].get("labels") or {}).get(v.OFFLOAD) == "true"
        ]
        virtual = await self._virtual_nodes(config) if offloaded else frozenset[str]()
        for job in jobs:
            name = job["metadata"]["name"]
            mine = [
                p for p in pods if (p["metadata"].get("labels") or {}).get(JOB_NAME_LABEL) == name
            ]
            workload = by_uid.get(job["metadata"].get("uid"))
            view = job_view(job, mine, workload, now, virtual)
            if view["failure"] is not None:
                await self._add_failure_log(config, job, view["failure"])
            views.append(view)
        return sorted(views, key=lambda view: view["createdAt"] or "", reverse=True)

    async def _virtual_nodes(self, config: PlatformConfig) -> frozenset[str]:
        """Names of the interLink virtual nodes (read at most once a minute), so a view can say
        that an offloaded job runs remotely; none when the nodes cannot be read (logged once:
        the service account lacks ``list nodes``)."""
        now = time.monotonic()
        if self._virtual is not None and now - self._virtual[0] < VIRTUAL_NODES_TTL:
            return self._virtual[1]
        try:
            nodes = await self.cluster.nodes()
        except KubeError as exc:
            if not self._nodes_unreadable:
                log.warning("cannot read the nodes, offloaded pods are not told apart: %s", exc)
                self._nodes_unreadable = True
            return frozenset()
        offload = config.jobs.offload
        names = frozenset(
            n["metadata"]["name"] for n in nodes if placement.is_virtual_node(n, offload)
        )
        self._virtual = (now, names)
        return names

    async def _workloads(self, config: PlatformConfig) -> list[JSON]:
        try:
            return await self.cluster.workloads(config.jobs.namespace)
        except KubeError as exc:
            raise cluster_error("reading the queue", exc) from None

    async def _add_failure_log(self, config: PlatformConfig, job: JSON, failure: JSON) -> None:
        """The last ``FAILURE_LOG_LINES`` lines (at most ``FAILURE_LOG_BYTES``) of the pod
        whose command failed, as ``failure["log"]`` and ``["logTruncated"]``: read once per
        pod (a failed pod's log does not change), then kept in memory, a bounded number."""
        key = (str(job["metadata"].get("uid") or job["metadata"]["name"]), failure["pod"])
        found = self._failure_logs.get(key)
        if found is None:
            try:
                found = await self._pod_log(
                    config, failure["pod"], FAILURE_LOG_LINES, FAILURE_LOG_BYTES
                )
            except BunshinError:  # the status still says the exit code; try again next time
                found = None
            else:
                self._failure_logs[key] = found
                while len(self._failure_logs) > FAILURE_LOGS_KEPT:
                    self._failure_logs.popitem(last=False)
        failure["log"], failure["logTruncated"] = found if found is not None else ("", False)

    async def _read_logs(
        self, config: PlatformConfig, pods: list[JSON], tail: int | None
    ) -> AsyncIterator[JSON]:
        """Each pod with ``log`` and ``truncated`` (and ``error`` when its log could not be
        read), within the per-pod and per-answer caps; never raises, so an answer can be
        streamed."""
        jobs = config.jobs
        budget = jobs.max_log_bytes_per_response
        for pod in pods:
            limit = min(jobs.max_log_bytes_per_pod, budget)
            if limit <= 0:
                yield {**pod, "log": "", "truncated": True}
                continue
            try:
                text, cut = await self._pod_log(config, pod["name"], tail, limit)
            except BunshinError as exc:
                yield {**pod, "log": "", "truncated": False, "error": exc.message}
                continue
            budget -= len(json.dumps(text, ensure_ascii=False).encode())  # what is sent
            yield {**pod, "log": text, "truncated": cut}

    async def _pod_log(
        self, config: PlatformConfig, pod: str, tail: int | None, limit: int
    ) -> tuple[str, bool]:
        """At most ``limit`` bytes of the pod's log, and whether it was cut. The API server
        stops at ``limitBytes``: a few bytes more than wanted (a character's worth, which a
        decoder may drop when cut in half) tell a cut log from one of exactly ``limit``."""
        try:
            text = await self.cluster.read_log(
                config.jobs.namespace,
                pod,
                JOB_CONTAINER,
                tail_lines=tail,
                limit_bytes=limit + 4,
            )
        except KubeError as exc:
            if exc.status == 400:  # not started yet
                return "", False
            raise cluster_error("reading the logs", exc) from None
        if text is None:  # gone
            return "", False
        data = text.encode()
        if len(data) <= limit:
            return text, False
        return data[:limit].decode(errors="ignore"), True

    # -- writing ---------------------------------------------------------------------------------

    async def _create(self, config: PlatformConfig, plan: JobPlan) -> tuple[JSON, str]:
        """Create the Job unreleased (suspended, without its queue label) under a free name,
        then what it needs: the project's JuiceFS credentials (offloaded jobs with JuiceFS
        folders) and the sandbox. On a failure the Job goes, with what it owns; if the service
        dies half-way, the ``SubmissionJanitor`` removes it. Returns the Job and its queue."""
        for _ in range(NAME_ATTEMPTS):
            manifest, queue = unreleased(
                job_manifest(plan, config, job_name(plan.user, secrets.token_hex(3)))
            )
            try:
                job = await self.cluster.create(manifest)
                break
            except KubeError as exc:
                if exc.conflict:
                    continue  # the random suffix is taken: draw another
                raise cluster_error("creating the job", exc) from None
        else:
            raise BunshinError(503, "unavailable", "could not find a free job name; try again")
        try:
            if plan.juicefs is not None:
                await self.credentials.ensure_juicefs_secret(plan.juicefs, config)
            if plan.sandbox:
                try:
                    await self.cluster.create(sandbox_configmap(plan, job))
                except KubeError as exc:
                    raise cluster_error("storing the sandbox files", exc) from None
        except BaseException:
            await self._undo(job)
            raise
        return job, queue

    async def _release(self, job: JSON, queue: str) -> JSON:
        """Queue the Job (its label), now that everything it needs exists."""
        meta = job["metadata"]
        try:
            released: JSON = await self.cluster.merge_patch(
                "Job", meta["namespace"], meta["name"], release_patch(queue)
            )
        except KubeError as exc:
            await self._undo(job)
            raise cluster_error("queueing the job", exc) from None
        return released

    async def _undo(self, job: JSON) -> None:
        meta = job["metadata"]
        try:
            await self.cluster.delete("Job", meta["namespace"], meta["name"])
        except KubeError as exc:  # an admin finds it labelled as ours; say so in the log
            log.error("could not remove job %s after a failure: %s", meta["name"], exc)

    async def within_quota(self, config: PlatformConfig, job: JSON, mine: list[JSON]) -> None:
        """Counted again after the create: another replica may have created one meanwhile. A
        replica that then sees more active jobs than the limit removes its own new job,
        whatever the order: replicas may see different lists, so no order-based choice is
        safe, and when both roll back the user is merely asked to try again (fails safe)."""
        limit = config.jobs.max_active_jobs_per_user
        name = job["metadata"]["name"]
        active = [j for j in mine if not is_finished(j)]
        if len(active) <= limit or all(j["metadata"]["name"] != name for j in active):
            return
        try:
            await self.cluster.delete("Job", job["metadata"]["namespace"], name)
        except KubeError as exc:
            raise cluster_error("removing a job", exc) from None
        raise BunshinError(
            409,
            "over-quota",
            f"you have {len(active) - 1} queued or running jobs and the limit is {limit}; wait "
            "for some to finish or cancel them, then submit again",
        )

    async def _prune_finished(self, config: PlatformConfig, mine: list[JSON]) -> None:
        """Remove the user's oldest finished jobs beyond ``maxFinishedJobsPerUser`` (cancelled
        jobs stay suspended, so the TTL never removes them)."""
        keep = config.jobs.max_finished_jobs_per_user
        finished = sorted(
            (j for j in mine if is_finished(j)),
            key=lambda j: (
                (j.get("status") or {}).get("completionTime")
                or j["metadata"].get("creationTimestamp")
                or "",
                j["metadata"]["name"],
            ),
        )
        for old in finished[: max(0, len(finished) - keep)]:
            try:
                await self.cluster.delete("Job", config.jobs.namespace, old["metadata"]["name"])
            except KubeError as exc:  # the new job stands; the next submission tries again
                log.warning("could not remove finished job %s: %s", old["metadata"]["name"], exc)

    async def _deactivate_workloads(self, config: PlatformConfig, job: JSON) -> None:
        """Tell Kueue the job is over: its Workload inactive, so it is never admitted again."""
        uid = job["metadata"].get("uid")
        for workload in await self._workloads(config):
            if (workload["metadata"].get("labels") or {}).get(v.KUEUE_JOB_UID) != uid:
                continue
            try:
                await self.cluster.patch_workload(
                    config.jobs.namespace, workload, {"spec": {"active": False}}
                )
            except KubeError as exc:
                raise cluster_error("deactivating the job's queue entry", exc) from None


def _selector(username: str | None) -> str:
    """Bunshin's objects, of one user when given."""
    selector = f"{v.MANAGED_BY}={MANAGED_BY}"
    if username is not None:
        selector += f",{USER_LABEL}={user_label(username)}"
    return selector
