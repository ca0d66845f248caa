"""The Bunshin page (``/services/bunshin/``): the user's jobs with status, logs and cancel, and
a "clone my server as a job" form. Plain HTML forms (XSRF-protected) over the same checks as
the API; a refusal shows the form again with the reason and creates nothing."""

from __future__ import annotations

import os
import shlex
from typing import Any

import jinja2
from tornado import web

from ..spawner import policy as spawn_policy
from .app import ApiHandler, read_logs, submit
from .cluster import owner
from .errors import BunshinError

JSON = dict[str, Any]
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("aiinfn_hub", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)
ACTIVE = ("queued", "admitted", "running")
PAGE_TAIL = 2000  # lines of each pod's log on the page (within the byte caps)


def form_to_body(form: dict[str, str], offload_storage: bool = False) -> JSON:
    """The API body of a form post (the API's own checks then apply). ``offload_storage``:
    the platform gives offloaded jobs JuiceFS folders, so they keep their storage."""
    try:
        command = shlex.split(form.get("command", ""))
    except ValueError as exc:
        raise BunshinError(400, "bad-request", f"command: {exc} (check the quotes)") from None
    offload = form.get("offload") == "1"
    # as the page explains: without JuiceFS an offloaded job takes no platform storage along
    body: JSON = {"command": command, "offload": offload}
    if offload and (not offload_storage or form.get("nostorage") == "1"):
        body["storage"] = False
    if form.get("name"):
        body["name"] = form["name"]
    accelerator = form.get("accelerator", "")
    if accelerator == "none":
        body["accelerator"] = None
    elif accelerator:
        count = form.get("count") or "1"
        if not count.isdigit():
            raise BunshinError(400, "bad-request", "units: expected a whole number")
        body["accelerator"] = {"name": accelerator, "count": int(count)}
    return body


class Page(ApiHandler):
    """HTML pages; errors are shown on the page."""

    @property
    def prefix(self) -> str:
        return str(self.settings["bunshin_prefix"])

    @property
    def offload_keeps_storage(self) -> bool:
        """Offloaded jobs get JuiceFS folders, so the form sends their storage along."""
        return self.service.config.jobs.offload.juicefs is not None

    async def render_page(
        self,
        *,
        status: int = 200,
        error: str = "",
        form: dict[str, str] | None = None,
        logs: JSON | None = None,
    ) -> None:
        user = self.user_context()
        service = self.service
        jobs = await self.views(await service.jobs.of_user(user.name), user.name)
        try:
            await service.hub.server(user.name, "")
            running = True
        except BunshinError:
            running = False
        html = _TEMPLATES.get_template("bunshin.html").render(
            user=user.name,
            prefix=self.prefix,
            hub_home=os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/home",
            jobs=jobs,
            refresh=logs is None and any(j["status"] in ACTIVE for j in jobs),
            error=error,
            notice=self.get_argument("notice", ""),
            form=form or {},
            accelerators=spawn_policy.allowed_accelerators(service.config, user),
            can_offload=service.config.jobs.offload.enabled
            and ("custom:bunshin:offload" in self.scopes() or self.is_admin()),
            offload_juicefs=self.offload_keeps_storage,
            server_running=running,
            xsrf=_text(self.xsrf_token),
            logs=logs,
        )
        self.set_status(status)
        self.finish(html)

    async def on_error(self, exc: BunshinError, form: dict[str, str] | None = None) -> None:
        if exc.status >= 500:
            self.set_status(exc.status)
        await self.render_page(status=exc.status, error=exc.message, form=form)

    def form(self) -> dict[str, str]:
        return {k: self.get_body_argument(k) for k in self.request.body_arguments if k != "_xsrf"}


class JobsPage(Page):
    @web.authenticated
    async def get(self) -> None:
        try:
            await self.render_page()
        except BunshinError as exc:
            self.set_status(exc.status)
            self.finish(exc.message)


class SubmitPage(Page):
    @web.authenticated
    async def post(self) -> None:
        form = self.form()
        try:
            job = await submit(self, form_to_body(form, self.offload_keeps_storage))
        except BunshinError as exc:
            await self.on_error(exc, form)
            return
        self.redirect(f"{self.prefix}?notice=Submitted+{job['id']}")


class CancelPage(Page):
    @web.authenticated
    async def post(self, job_id: str) -> None:
        try:
            job = await self.visible_job(job_id)
            await self.service.jobs.cancel(job, self.caller()["name"])
        except BunshinError as exc:
            await self.on_error(exc)
            return
        self.redirect(f"{self.prefix}?notice=Cancelled+{job_id}")


class LogsPage(Page):
    @web.authenticated
    async def get(self, job_id: str) -> None:
        try:
            job = await self.visible_job(job_id)
            (view,) = await self.views([job], owner(job))
            with self.service.reading_logs(self.caller()["name"]):
                pods = [p async for p in read_logs(self.service, view["pods"], PAGE_TAIL)]
            await self.render_page(logs={"id": job_id, "pods": pods})
        except BunshinError as exc:
            await self.on_error(exc)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
