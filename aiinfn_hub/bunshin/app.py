"""The Bunshin service: a JupyterHub service (tornado + HubOAuth) cloning servers into jobs.

Routes under the service prefix (``/services/bunshin/``): the JSON API at ``api/v1/``
(``jobs``, ``jobs/{id}``, ``jobs/{id}/logs``, ``queues``) and the OAuth callback. Users
authenticate with the hub: their browser session (OAuth) or a token (``Authorization: token``,
e.g. their server's ``$JUPYTERHUB_API_TOKEN``). Scopes: ``custom:bunshin:submit`` to submit,
``custom:bunshin:offload`` to offload, ``custom:bunshin:admin`` (or hub admin, or the
configured admin group) to see and cancel everyone's jobs.

Cross-site requests: a cookie-authenticated request that changes something needs the page's
XSRF token (whatever else it carries, e.g. the ``Authorization: Basic`` a browser adds behind
an authenticating proxy); only a valid hub token exempts a request. The service's cookies are
``SameSite=Lax`` and its pages cannot be framed by other sites.

Abuse: one user's submissions are checked and created one at a time (and counted again after
the create, for several replicas), finished jobs beyond ``maxFinishedJobsPerUser`` are removed
oldest first, request bodies and logs are capped (``jobs`` settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import default

from ..config import PlatformConfig, load_platform_config
from ..kube.rest import KubeRest
from ..spawner.policy import UserContext
from .cluster import HubClient, Jobs, owner
from .errors import BunshinError
from .job import job_status, job_view
from .namespaces import check_jobs_namespace, protected_namespaces, servers_namespace
from .policy import JobContext, plan_job
from .request import parse_request

JSON = dict[str, Any]
SUBMIT, OFFLOAD, ADMIN = "custom:bunshin:submit", "custom:bunshin:offload", "custom:bunshin:admin"
FINISHED = ("succeeded", "failed", "cancelled")
SAFE_SAMESITE = ("lax", "strict")
# other sites may not frame the pages (clickjacking the cancel and submit buttons)
SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
}
MAX_LOG_READS_PER_USER = 2
_TAIL = re.compile(r"[0-9]{1,7}")  # ASCII digits only: str.isdigit() also takes "²"
log = logging.getLogger("bunshin")


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


class Service:
    """What every handler shares: configuration, the Hub API and the cluster."""

    def __init__(
        self,
        config: PlatformConfig,
        hub: HubClient,
        jobs: Jobs,
        servers_namespace: str = "jupyterhub",
    ) -> None:
        self.config = config
        self.hub = hub
        self.jobs = jobs
        self.servers_namespace = servers_namespace  # where a server's pod is, when unrecorded
        self.user_locks = UserLocks()  # one submission of a user at a time (see submit)
        self._log_reads: dict[str, int] = {}  # log answers in progress, per user

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


class ServiceAuth(HubOAuth):  # type: ignore[misc]
    """HubOAuth whose cookies are at least ``SameSite=Lax`` (others' pages cannot send them
    with a cross-site POST), whatever ``$JUPYTERHUB_COOKIE_OPTIONS`` says."""

    @default("cookie_options")
    def _lax_cookie_options(self) -> dict[str, Any]:
        options = dict(self._default_cookie_options())
        if str(options.get("samesite", "")).lower() not in SAFE_SAMESITE:
            options["samesite"] = "Lax"
        return options


class Authenticated(HubOAuthenticated):  # type: ignore[misc]
    """The service's HubOAuth (``ServiceAuth``) and headers on every answer."""

    @property
    def hub_auth(self) -> ServiceAuth:
        auth: ServiceAuth = self.settings["hub_auth"]
        return auth

    @hub_auth.setter
    def hub_auth(self, auth: ServiceAuth) -> None:
        self.settings["hub_auth"] = auth

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)


class OAuthCallbackHandler(Authenticated, HubOAuthCallbackHandler):  # type: ignore[misc]
    """The hub's OAuth callback, setting the service's (SameSite) cookie."""


class ApiHandler(Authenticated, web.RequestHandler):
    """JSON in, JSON out; every error is ``{"error", "message"}``."""

    _caller_known = False

    @property
    def service(self) -> Service:
        service: Service = self.settings["bunshin"]
        return service

    def check_xsrf_cookie(self) -> None:
        """Cookie-authenticated changes need the XSRF token; only a valid hub token (header)
        exempts a request, as HubOAuth decides. Tornado asks before the caller is known: that
        first call is deferred to ``prepare``."""
        if not self._caller_known:
            return
        super().check_xsrf_cookie()

    def prepare(self) -> None:
        """The XSRF check for changes (subclasses overriding this must call it first)."""
        _ = self.current_user  # a token first (then exempt from XSRF), else the cookie
        self._caller_known = True
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            self.check_xsrf_cookie()

    def caller(self) -> JSON:
        user: JSON | None = self.current_user
        if not user:
            raise BunshinError(
                403,
                "forbidden",
                "sign in to the hub, or send 'Authorization: token <your JupyterHub API token>'",
            )
        return user

    def scopes(self) -> set[str]:
        return set(self.caller().get("scopes") or [])

    def is_admin(self) -> bool:
        user = self.caller()
        group = self.service.config.jobs.admin_group
        return (
            ADMIN in self.scopes()
            or bool(user.get("admin"))
            or bool(group and group in (user.get("groups") or []))
        )

    def user_context(self) -> UserContext:
        user = self.caller()
        return UserContext(str(user["name"]), frozenset(user.get("groups") or []))

    def body(self) -> Any:
        limit = self.service.config.jobs.max_request_bytes
        if len(self.request.body) > limit:  # the server stops larger bodies before this
            raise BunshinError(413, "too-large", f"the body is larger than {limit} bytes")
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            raise BunshinError(400, "bad-request", "the body is not valid JSON") from None

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        else:
            message = self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": _code(status_code), "message": message}))

    async def guarded(self, action: Callable[[], Awaitable[None]]) -> None:
        try:
            await action()
        except BunshinError as exc:
            if exc.status >= 500:
                log.warning("%s %s: %s", self.request.method, self.request.path, exc.message)
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": exc.code, "message": exc.message}))

    async def visible_job(self, job_id: str) -> JSON:
        """The job if the caller owns it (or is an admin); 404 otherwise (no existence leak)."""
        job = await self.service.jobs.get(job_id)
        if owner(job) != self.caller()["name"] and not self.is_admin():
            raise BunshinError(404, "not-found", f"no job {job_id!r}")
        return job

    async def views(self, jobs: list[JSON], user: str | None) -> list[JSON]:
        service = self.service
        pods = await service.jobs.pods(user)
        workloads = await service.jobs.workloads()
        by_uid = {
            (w["metadata"].get("labels") or {}).get("kueue.x-k8s.io/job-uid"): w for w in workloads
        }
        views = []
        for job in jobs:
            name = job["metadata"]["name"]
            mine = [p for p in pods if (p["metadata"].get("labels") or {}).get("job-name") == name]
            views.append(job_view(job, mine, by_uid.get(job["metadata"].get("uid"))))
        return sorted(views, key=lambda v: v["createdAt"] or "", reverse=True)


class JobsHandler(ApiHandler):
    async def get(self) -> None:
        async def action() -> None:
            wanted = self.get_argument("user", None)
            everyone = self.get_argument("all", "") in ("1", "true")
            if (wanted or everyone) and not self.is_admin():
                raise BunshinError(403, "forbidden", "only admins see other users' jobs")
            user = None if everyone else (wanted or self.caller()["name"])
            jobs = await self.service.jobs.of_user(user)
            self.send(await self.views(jobs, user))

        await self.guarded(action)

    async def post(self) -> None:
        async def action() -> None:
            job = await submit(self, self.body())
            self.send(job, 201)

        await self.guarded(action)


async def submit(handler: ApiHandler, body: Any) -> JSON:
    """Check and create a job for the caller (the API's POST and the page's form)."""
    if SUBMIT not in handler.scopes() and not handler.is_admin():
        raise BunshinError(403, "forbidden", "you may not submit jobs (scope needed)")
    can_offload = OFFLOAD in handler.scopes() or handler.is_admin()
    return await submit_job(handler.service, handler.user_context(), can_offload, body)


async def submit_job(service: Service, user: UserContext, can_offload: bool, body: Any) -> JSON:
    """The submission itself, once the caller is known and may submit: parse, check, create
    within the user's quota, prune the user's old finished jobs."""
    request = parse_request(body)
    jobs = service.config.jobs
    server = await service.hub.server(user.name, request.server)
    state = server["state"]
    namespace = state.get("namespace") or service.servers_namespace
    if namespace == jobs.namespace and not jobs.allow_hub_namespace:
        log.error("jobs.namespace %s is the servers' namespace: refusing to clone", namespace)
        raise BunshinError(
            500,
            "misconfigured",
            "jobs cannot run in the servers' namespace on this platform; tell the platform "
            "administrators (jobs.namespace)",
        )
    pod = await service.jobs.pod(namespace, state["pod_name"])
    # one submission of a user at a time, so the count below cannot be raced by this replica
    async with service.user_locks.hold(user.name):
        active = _active(await service.jobs.of_user(user.name))
        context = JobContext(
            user=user,
            config=service.config,
            can_offload=can_offload,
            active_jobs=len(active),
        )
        plan = plan_job(request, context, pod, request.server, state.get("pod_uid"))
        job = await service.jobs.create(plan)
        mine = await service.jobs.of_user(user.name)
        await _within_quota(service, job, mine)
        await _prune_finished(service, mine)
    log.info("job %s submitted by %s", job["metadata"]["name"], user.name)
    return job_view(job, [], None)


def _active(jobs: list[JSON]) -> list[JSON]:
    """Queued or running jobs."""
    return [j for j in jobs if job_status(j, None, [])[0] not in FINISHED]


async def _within_quota(service: Service, job: JSON, mine: list[JSON]) -> None:
    """Counted again after the create: another replica may have created one meanwhile. A
    replica that then sees more active jobs than the limit removes its own new job, whatever
    the order: replicas may see different lists, so no order-based choice is safe, and when
    both roll back the user is merely asked to try again (fails safe)."""
    limit = service.config.jobs.max_active_jobs_per_user
    name = job["metadata"]["name"]
    active = _active(mine)
    if len(active) <= limit or all(j["metadata"]["name"] != name for j in active):
        return
    await service.jobs.delete(job)
    raise BunshinError(
        409,
        "over-quota",
        f"you have {len(active) - 1} queued or running jobs and the limit is {limit}; wait "
        "for some to finish or cancel them, then submit again",
    )


async def _prune_finished(service: Service, mine: list[JSON]) -> None:
    """Remove the user's oldest finished jobs beyond ``maxFinishedJobsPerUser`` (cancelled
    jobs stay suspended, so the TTL never removes them)."""
    keep = service.config.jobs.max_finished_jobs_per_user
    finished = sorted(
        (j for j in mine if job_status(j, None, [])[0] in FINISHED),
        key=lambda j: (
            (j.get("status") or {}).get("completionTime")
            or j["metadata"].get("creationTimestamp")
            or "",
            j["metadata"]["name"],
        ),
    )
    for old in finished[: max(0, len(finished) - keep)]:
        try:
            await service.jobs.delete(old)
        except BunshinError as exc:  # the new job stands; the next submission tries again
            log.warning("could not remove finished job %s: %s", old["metadata"]["name"], exc)


async def read_logs(service: Service, pods: list[JSON], tail: int | None) -> AsyncIterator[JSON]:
    """Each pod with ``log`` and ``truncated`` (and ``error`` when its log could not be read),
    within the per-pod and per-answer caps; never raises, so an answer can be streamed."""
    jobs = service.config.jobs
    budget = jobs.max_log_bytes_per_response
    for pod in pods:
        limit = min(jobs.max_log_bytes_per_pod, budget)
        if limit <= 0:
            yield {**pod, "log": "", "truncated": True}
            continue
        try:
            text, cut = await service.jobs.log(pod["name"], tail, limit)
        except BunshinError as exc:
            yield {**pod, "log": "", "truncated": False, "error": exc.message}
            continue
        budget -= len(json.dumps(text, ensure_ascii=False).encode())  # what is sent
        yield {**pod, "log": text, "truncated": cut}


def parse_tail(text: str | None) -> int | None:
    """``tail``: a whole number of lines in ASCII digits, or None."""
    if text is None:
        return None
    if not _TAIL.fullmatch(text):
        raise BunshinError(400, "bad-request", "tail: expected a number of lines (0-9999999)")
    return int(text)


class JobHandler(ApiHandler):
    async def get(self, job_id: str) -> None:
        async def action() -> None:
            job = await self.visible_job(job_id)
            (view,) = await self.views([job], owner(job))
            self.send(view)

        await self.guarded(action)

    async def delete(self, job_id: str) -> None:
        async def action() -> None:
            job = await self.visible_job(job_id)
            status, _ = job_status(job, None, [])
            if status in FINISHED:
                raise BunshinError(409, "finished", f"job {job_id} has already {status}")
            updated = await self.service.jobs.cancel(job, self.caller()["name"])
            log.info("job %s cancelled by %s", job_id, self.caller()["name"])
            (view,) = await self.views([updated], owner(updated))
            self.send(view)

        await self.guarded(action)


class JobLogsHandler(ApiHandler):
    async def get(self, job_id: str) -> None:
        """Streamed pod by pod: the answer never holds more than one pod's (capped) log."""

        async def action() -> None:
            tail = parse_tail(self.get_argument("tail", None))
            job = await self.visible_job(job_id)
            (view,) = await self.views([job], owner(job))
            jobs = self.service.config.jobs
            with self.service.reading_logs(self.caller()["name"]):
                self.set_header("Content-Type", "application/json")
                self.write(f'{{"id": {json.dumps(job_id)}, "pods": [')
                cut, first = False, True
                async for pod in read_logs(self.service, view["pods"], tail):
                    cut = cut or pod["truncated"]
                    self.write(("" if first else ", ") + json.dumps(pod, ensure_ascii=False))
                    first = False
                    await self.flush()
            message = (
                f"logs are cut at {jobs.max_log_bytes_per_pod} bytes per pod and "
                f"{jobs.max_log_bytes_per_response} per answer: ask for a pod's end with tail=N"
                if cut
                else ""
            )
            self.finish(f'], "truncated": {json.dumps(cut)}, "message": {json.dumps(message)}}}')

        await self.guarded(action)


class QueuesHandler(ApiHandler):
    async def get(self) -> None:
        async def action() -> None:
            user = self.user_context()
            config = self.service.config
            jobs = await self.service.jobs.of_user(user.name)
            queues = []
            for name, project in user.projects(config):
                active = [
                    j
                    for j in jobs
                    if (j["metadata"].get("labels") or {}).get("aiinfn.infn.it/project") == name
                    and job_status(j, None, [])[0] not in FINISHED
                ]
                queues.append(
                    {
                        "project": name,
                        "displayName": project.display_name,
                        "queue": config.jobs.queue_name.replace("{project}", name),
                        "yourActiveJobs": len(active),
                    }
                )
            self.send(
                {
                    "queues": queues,
                    "maxActiveJobs": config.jobs.max_active_jobs_per_user,
                    "canOffload": config.jobs.offload.enabled
                    and (OFFLOAD in self.scopes() or self.is_admin()),
                }
            )

        await self.guarded(action)


class NotFoundHandler(ApiHandler):
    def prepare(self) -> None:
        super().prepare()  # every handler's prepare runs the XSRF check first
        raise web.HTTPError(404, "no such API path")


def _code(status: int) -> str:
    return {400: "bad-request", 403: "forbidden", 404: "not-found", 405: "bad-method"}.get(
        status, "error"
    )


def make_app(service: Service, prefix: str, hub_auth: ServiceAuth | None = None) -> web.Application:
    """The service's tornado application (``hub_auth``: made from the hub's environment)."""
    from . import pages

    api = url_path_join(prefix, "api/v1")
    return web.Application(
        [
            (url_path_join(api, "jobs"), JobsHandler),
            (url_path_join(api, r"jobs/([a-z0-9-]{1,63})"), JobHandler),
            (url_path_join(api, r"jobs/([a-z0-9-]{1,63})/logs"), JobLogsHandler),
            (url_path_join(api, "queues"), QueuesHandler),
            (url_path_join(api, ".*"), NotFoundHandler),
            (url_path_join(prefix, "oauth_callback"), OAuthCallbackHandler),
            (prefix, pages.JobsPage),
            (url_path_join(prefix, "jobs"), pages.SubmitPage),
            (url_path_join(prefix, r"jobs/([a-z0-9-]{1,63})/cancel"), pages.CancelPage),
            (url_path_join(prefix, r"jobs/([a-z0-9-]{1,63})/logs"), pages.LogsPage),
        ],
        bunshin=service,
        bunshin_prefix=prefix,
        hub_auth=hub_auth or ServiceAuth(),
        cookie_secret=os.urandom(32),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"samesite": "Lax", "httponly": True},
    )


def serve_http(app: web.Application, service: Service, host: str, port: int) -> HTTPServer:
    """Listen with the body limit: larger bodies are refused (400) before they are read."""
    server = HTTPServer(app, max_body_size=service.config.jobs.max_request_bytes)
    server.listen(port, address=host)
    return server


async def make_service(config_path: Path, env: Mapping[str, str] | None = None) -> Service:
    """From the environment JupyterHub gives its services, and the cluster's credentials.

    Raises :class:`~.namespaces.NamespaceError` when ``jobs.namespace`` is the hub's or the
    servers' (see :mod:`.namespaces`), before touching the cluster."""
    env = os.environ if env is None else env
    config = load_platform_config(config_path)
    check_jobs_namespace(config.jobs, protected_namespaces(env))
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        await kube_config.load_kube_config()
    hub = HubClient(env["JUPYTERHUB_API_URL"], env["JUPYTERHUB_API_TOKEN"])
    return Service(config, hub, Jobs(KubeRest(client.ApiClient()), config), servers_namespace(env))


def bind_address() -> tuple[str, int]:
    """Host and port from ``$JUPYTERHUB_SERVICE_URL`` (set by the hub for its services)."""
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    return url.hostname or "127.0.0.1", url.port or 80
