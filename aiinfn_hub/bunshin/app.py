"""The Bunshin service: a JupyterHub service (tornado + HubOAuth) cloning servers into jobs.

Routes under the service prefix (``/services/bunshin/``): the JSON API at ``api/v1/``
(``jobs``, ``jobs/{id}``, ``jobs/{id}/logs``, ``queues``) and the OAuth callback. Users
authenticate with the hub: their browser session (OAuth) or a token (``Authorization: token``,
e.g. their server's ``$JUPYTERHUB_API_TOKEN``). Scopes: ``custom:bunshin:submit`` to submit,
``custom:bunshin:offload`` to offload, ``custom:bunshin:admin`` (or hub admin, or the
configured admin group) to see and cancel everyone's jobs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config
from tornado import web

from ..config import PlatformConfig, load_platform_config
from ..kube.rest import KubeRest
from ..spawner.policy import UserContext
from .cluster import HubClient, Jobs, owner
from .errors import BunshinError
from .job import job_status, job_view
from .policy import JobContext, plan_job
from .request import parse_request

JSON = dict[str, Any]
SUBMIT, OFFLOAD, ADMIN = "custom:bunshin:submit", "custom:bunshin:offload", "custom:bunshin:admin"
FINISHED = ("succeeded", "failed", "cancelled")
log = logging.getLogger("bunshin")


class Service:
    """What every handler shares: configuration, the Hub API and the cluster."""

    def __init__(self, config: PlatformConfig, hub: HubClient, jobs: Jobs) -> None:
        self.config = config
        self.hub = hub
        self.jobs = jobs


class ApiHandler(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
    """JSON in, JSON out; every error is ``{"error", "message"}``."""

    @property
    def service(self) -> Service:
        service: Service = self.settings["bunshin"]
        return service

    def check_xsrf_cookie(self) -> None:
        # token-authenticated API calls carry no cookie; browser calls are checked by HubOAuth
        if self.request.headers.get("Authorization"):
            return
        super().check_xsrf_cookie()

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
    request = parse_request(body)
    service, user = handler.service, handler.user_context()
    server = await service.hub.server(user.name, request.server)
    state = server["state"]
    namespace = state.get("namespace") or service.config.jobs.namespace
    pod = await service.jobs.pod(namespace, state["pod_name"])
    mine = await service.jobs.of_user(user.name)
    active = [j for j in mine if job_status(j, None, [])[0] not in FINISHED]
    context = JobContext(
        user=user,
        config=service.config,
        can_offload=OFFLOAD in handler.scopes() or handler.is_admin(),
        active_jobs=len(active),
    )
    plan = plan_job(request, context, pod, request.server, state.get("pod_uid"))
    job = await service.jobs.create(plan)
    log.info("job %s submitted by %s", job["metadata"]["name"], user.name)
    return job_view(job, [], None)


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
        async def action() -> None:
            job = await self.visible_job(job_id)
            tail_text = self.get_argument("tail", None)
            tail = None
            if tail_text is not None:
                if not tail_text.isdigit():
                    raise BunshinError(400, "bad-request", "tail: expected a number of lines")
                tail = int(tail_text)
            (view,) = await self.views([job], owner(job))
            pods = []
            for pod in view["pods"]:
                text = await self.service.jobs.log(pod["name"], tail)
                pods.append({**pod, "log": text})
            self.send({"id": job_id, "pods": pods})

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
        raise web.HTTPError(404, "no such API path")


def _code(status: int) -> str:
    return {400: "bad-request", 403: "forbidden", 404: "not-found", 405: "bad-method"}.get(
        status, "error"
    )


def make_app(service: Service, prefix: str) -> web.Application:
    from . import pages

    api = url_path_join(prefix, "api/v1")
    return web.Application(
        [
            (url_path_join(api, "jobs"), JobsHandler),
            (url_path_join(api, r"jobs/([a-z0-9-]{1,63})"), JobHandler),
            (url_path_join(api, r"jobs/([a-z0-9-]{1,63})/logs"), JobLogsHandler),
            (url_path_join(api, "queues"), QueuesHandler),
            (url_path_join(api, ".*"), NotFoundHandler),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (prefix, pages.JobsPage),
            (url_path_join(prefix, "jobs"), pages.SubmitPage),
            (url_path_join(prefix, r"jobs/([a-z0-9-]{1,63})/cancel"), pages.CancelPage),
            (url_path_join(prefix, r"jobs/([a-z0-9-]{1,63})/logs"), pages.LogsPage),
        ],
        bunshin=service,
        bunshin_prefix=prefix,
        cookie_secret=os.urandom(32),
        xsrf_cookies=True,
    )


async def make_service(config_path: Path) -> Service:
    """From the environment JupyterHub gives its services, and the cluster's credentials."""
    config = load_platform_config(config_path)
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        await kube_config.load_kube_config()
    hub = HubClient(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    return Service(config, hub, Jobs(KubeRest(client.ApiClient()), config))


def bind_address() -> tuple[str, int]:
    """Host and port from ``$JUPYTERHUB_SERVICE_URL`` (set by the hub for its services)."""
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    return url.hostname or "127.0.0.1", url.port or 80
