"""The Bunshin service: a JupyterHub service (tornado + HubOAuth) cloning servers into jobs.

Routes under the service prefix (``/services/bunshin/``): the JSON API at ``api/v1/``
(``jobs``, ``jobs/{id}``, ``jobs/{id}/logs``, ``queues``; ``api``), the page and its forms
(``pages``), and the OAuth callback. Both call :class:`~.service.JobService`, which holds the
rules; authentication, XSRF, cookies and headers are the shared ``services.web``. Beside them
runs the :class:`~.recorder.PreemptionRecorder` (``make_recorder``), which keeps the record of
the notebooks' preemptions on the Jobs, and the :class:`~.janitor.SubmissionJanitor`
(``make_janitor``), which removes what submissions interrupted by a restart left.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from jupyterhub.utils import url_path_join
from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config
from tornado import web
from tornado.httpserver import HTTPServer

from ..config.provider import config_provider
from ..kube.rest import KubeRest
from ..services import web as service_web
from ..services.hub_api import HubClient
from ..services.web import NotFoundHandler, ServiceAuth
from . import api, pages
from .janitor import SubmissionJanitor
from .namespaces import check_jobs_namespace, protected_namespaces, servers_namespace
from .recorder import PreemptionRecorder
from .service import JobService

_JOB = "([a-z0-9-]{1,63})"


def make_app(
    service: JobService, prefix: str, hub_auth: ServiceAuth | None = None
) -> web.Application:
    """The service's tornado application (``hub_auth``: made from the hub's environment)."""
    v1 = url_path_join(prefix, "api/v1")
    return service_web.make_application(
        prefix,
        [
            (url_path_join(v1, "jobs"), api.JobsHandler),
            (url_path_join(v1, f"jobs/{_JOB}"), api.JobHandler),
            (url_path_join(v1, f"jobs/{_JOB}/logs"), api.JobLogsHandler),
            (url_path_join(v1, "queues"), api.QueuesHandler),
            (url_path_join(v1, ".*"), NotFoundHandler),
            (prefix, pages.JobsPage),
            (url_path_join(prefix, "jobs"), pages.SubmitPage),
            (url_path_join(prefix, f"jobs/{_JOB}/cancel"), pages.CancelPage),
            (url_path_join(prefix, f"jobs/{_JOB}/logs"), pages.LogsPage),
        ],
        hub_auth,
        bunshin=service,
    )


def serve_http(app: web.Application, service: JobService, host: str, port: int) -> HTTPServer:
    """Listen with the body limit in force at start: larger bodies are refused (400) unread."""
    limit = service.snapshot().jobs.max_request_bytes
    return service_web.serve_http(app, host, port, max_body_size=limit)


async def make_service(config_path: Path, env: Mapping[str, str] | None = None) -> JobService:
    """From the environment JupyterHub gives its services, and the cluster's credentials.

    Raises :class:`~aiinfn_hub.config.PlatformConfigError` when the file is not valid, and
    :class:`~.namespaces.NamespaceError` when ``jobs.namespace`` is the hub's or the servers'
    (see :mod:`.namespaces`), before touching the cluster. The configuration is then read
    again whenever the file changes (one snapshot per request)."""
    env = os.environ if env is None else env
    provider = config_provider(config_path)
    protected = protected_namespaces(env)
    check_jobs_namespace(provider.current().jobs, protected)
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        await kube_config.load_kube_config()
    hub = HubClient(env["JUPYTERHUB_API_URL"], env["JUPYTERHUB_API_TOKEN"])
    return JobService(
        provider, hub, KubeRest(client.ApiClient()), servers_namespace(env), protected
    )


def make_janitor(service: JobService) -> SubmissionJanitor:
    """The janitor of interrupted submissions for the jobs' namespace in force at start."""
    return SubmissionJanitor(service.cluster, service.snapshot().jobs.namespace)


def make_recorder(service: JobService) -> PreemptionRecorder:
    """The recorder of preemptions for the jobs' namespace in force at start (a change of
    ``jobs.namespace`` takes effect at the next start), on the service's cluster client."""
    return PreemptionRecorder(service.cluster.kube, service.snapshot().jobs.namespace)
