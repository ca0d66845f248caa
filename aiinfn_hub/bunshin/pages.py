"""The Bunshin page (``/services/bunshin/``): the user's jobs with status, logs and cancel, and
a "clone my server as a job" form, in the hub's look. Plain HTML forms (XSRF-protected) that
call the same :class:`~.service.JobService` use cases as the API, so page and API give the
same answers; a refusal shows the page again with the reason and changes nothing. A small
script keeps the statuses current from the JSON API; without it, the page refreshes itself
while jobs are active and has a refresh link."""

from __future__ import annotations

import shlex
from typing import Any

import jinja2
from tornado import web

from ..services.caller import Caller
from ..services.errors import ServiceError
from ..services.pages import PageHandler, template_environment
from .errors import BunshinError
from .service import FINISHED, JobService

JSON = dict[str, Any]
_TEMPLATES = template_environment(jinja2.PackageLoader("aiinfn_hub", "templates"))
PAGE_TAIL = 2000  # lines of each pod's log on the page (within the byte caps)
POLL_SECONDS = 5  # the script's refresh while jobs are active (30 s otherwise)


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


class Page(PageHandler):
    """An HTML page of the service; refusals are shown on the page."""

    @property
    def service(self) -> JobService:
        service: JobService = self.settings["bunshin"]
        return service

    async def render_page(
        self,
        caller: Caller,
        *,
        status: int = 200,
        error: str = "",
        form: dict[str, str] | None = None,
        logs: JSON | None = None,
    ) -> None:
        overview = await self.service.overview(caller)
        html = _TEMPLATES.get_template("bunshin.html").render(
            **self.hub_page_context(caller, "Bunshin jobs"),
            prefix=self.service_prefix,
            jobs=overview.jobs,
            finished=FINISHED,
            refresh=logs is None and overview.active,
            poll_seconds=POLL_SECONDS,
            error=error,
            notice=self.get_argument("notice", ""),
            form=form or {},
            accelerators=overview.accelerators,
            can_offload=overview.can_offload,
            offload_juicefs=overview.offload_keeps_storage,
            offload_local_first=overview.offload_local_first,
            server_running=overview.server_running,
            logs=logs,
        )
        self.set_status(status)
        self.finish(html)

    async def show_refusal(
        self, caller: Caller, exc: ServiceError, form: dict[str, str] | None = None
    ) -> None:
        await self.render_page(caller, status=exc.status, error=exc.message, form=form)

    def form(self) -> dict[str, str]:
        return {k: self.get_body_argument(k) for k in self.request.body_arguments if k != "_xsrf"}


class JobsPage(Page):
    """The page: jobs and the submission form."""

    @web.authenticated
    async def get(self) -> None:
        await self.render_page(self.caller())


class SubmitPage(Page):
    """The form's post: submit, then back to the page with a notice (or the refusal)."""

    @web.authenticated
    async def post(self) -> None:
        caller, form = self.caller(), self.form()
        try:
            config = self.service.snapshot()  # the form's meaning depends on it: one for both
            keeps_storage = config.jobs.offload.juicefs is not None
            job = await self.service.submit(caller, form_to_body(form, keeps_storage), config)
        except ServiceError as exc:
            await self.show_refusal(caller, exc, form)
            return
        self.redirect(f"{self.service_prefix}?notice=Submitted+{job['id']}")


class CancelPage(Page):
    """A cancel button's post: the API's cancel rule, then back to the page."""

    @web.authenticated
    async def post(self, job_id: str) -> None:
        caller = self.caller()
        try:
            await self.service.cancel(caller, job_id)
        except ServiceError as exc:
            await self.show_refusal(caller, exc)
            return
        self.redirect(f"{self.service_prefix}?notice=Cancelled+{job_id}")


class LogsPage(Page):
    """A job's logs on the page (the last ``PAGE_TAIL`` lines of each pod)."""

    @web.authenticated
    async def get(self, job_id: str) -> None:
        caller = self.caller()
        try:
            async with self.service.logs(caller, job_id, PAGE_TAIL) as logs:
                pods = [pod async for pod in logs]
        except ServiceError as exc:
            await self.show_refusal(caller, exc)
            return
        await self.render_page(caller, logs={"id": job_id, "pods": pods})
