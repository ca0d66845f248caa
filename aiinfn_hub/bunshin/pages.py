"""The Bunshin page (``/services/bunshin/``, "Batch jobs" in the hub's menu): the user's jobs
with status, logs and cancel, and a "clone my server as a job" form, in the hub's look. Plain
HTML forms (XSRF-protected) that call the same :class:`~.service.JobService` use cases as the
API, so page and API give the same answers; a refusal shows the page again with the reason
next to the form that caused it and changes nothing.

Without JavaScript everything works through the forms and a Refresh link (times in UTC, a
cancel asks for confirmation on a page of its own). With it, a small script reads the JSON
API: statuses and new jobs update in place, a running job's log follows as it grows, times
are shown in the user's time zone and a cancel is confirmed in a dialog. The page never
reloads itself, so nothing the user is typing is lost.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any

import jinja2
from tornado import web

from ..services.caller import Caller
from ..services.errors import ServiceError
from ..services.pages import PageHandler, template_environment
from .errors import BunshinError
from .scopes import DISPLAY_NAME
from .service import FINISHED, JobService

JSON = dict[str, Any]
_TEMPLATES = template_environment(jinja2.PackageLoader("aiinfn_hub", "templates"))
PAGE_TAIL = 2000  # lines of each pod's log on the page (within the byte caps)
POLL_SECONDS = 5  # the script's refresh while jobs are active (30 s otherwise)
LOG_POLL_SECONDS = 3  # the logs page's refresh while the job may still write
MAX_UNITS_DIGITS = 4  # a units or retries field longer than this is no number we take
SUBMIT_FORM = "submit"  # where a refusal is shown: next to the submission form ...
PAGE = "page"  # ... or at the top of the page (a job's row for a cancel: its id)


def utc_text(value: str | None) -> str:
    """An API time (``2026-12-07T15:58:26Z``) as the page shows it without JavaScript:
    ``2026-12-07 15:58 UTC``; "" when absent, the text itself when it is no time."""
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    return f"{when:%Y-%m-%d %H:%M} UTC"


_TEMPLATES.filters["utc"] = utc_text


def _whole_number(form: dict[str, str], key: str, label: str) -> int | None:
    text = form.get(key, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_UNITS_DIGITS):
        raise BunshinError(400, "bad-request", f"{label}: expected a whole number")
    return int(text)


def form_to_body(form: dict[str, str], offload_storage: bool = False) -> JSON:
    """The API body of a form post (the API's own checks then apply). ``offload_storage``:
    the platform gives offloaded jobs JuiceFS folders, so they keep their storage.

    The command is split as a shell would and sent with the text as typed
    (``commandText``), which the pages then show. "Same as my server" with a number of
    units asks for that many units of the server's model (refused when it has none); with
    the units left empty, the server's accelerator as it is."""
    text = form.get("command", "").strip()
    try:
        command = shlex.split(text)
    except ValueError as exc:
        raise BunshinError(400, "bad-request", f"command: {exc} (check the quotes)") from None
    offload = form.get("offload") == "1"
    # as the page explains: without JuiceFS an offloaded job takes no platform storage along
    body: JSON = {"command": command, "offload": offload}
    if command:
        body["commandText"] = text
    if offload and (not offload_storage or form.get("nostorage") == "1"):
        body["storage"] = False
    if form.get("name"):
        body["name"] = form["name"]
    accelerator = form.get("accelerator", "")
    count = _whole_number(form, "count", "units")
    if accelerator == "none":
        body["accelerator"] = None
    elif accelerator:
        body["accelerator"] = {"name": accelerator, "count": 1 if count is None else count}
    elif count is not None:
        body["accelerator"] = {"count": count}
    retries = _whole_number(form, "retries", "retries")
    if retries is not None:
        body["retries"] = retries
    return body


class Page(PageHandler):
    """An HTML page of the service; refusals are shown on the page, where they belong."""

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
        error_at: str = PAGE,
        form: dict[str, str] | None = None,
        logs: JSON | None = None,
        confirm: JSON | None = None,
    ) -> None:
        overview = await self.service.overview(caller)
        html = _TEMPLATES.get_template("bunshin.html").render(
            **self.hub_page_context(caller, DISPLAY_NAME),
            prefix=self.service_prefix,
            jobs=overview.jobs,
            finished=FINISHED,
            poll_seconds=POLL_SECONDS,
            log_poll_seconds=LOG_POLL_SECONDS,
            page_tail=PAGE_TAIL,
            error=error,
            error_at=error_at,
            notice=self.get_argument("notice", "") if not error else "",
            form=form or {},
            accelerators=overview.accelerators,
            server_accelerator=overview.server_accelerator,
            server_units=overview.server_units,
            max_retries=overview.max_retries,
            default_retries=overview.default_retries,
            can_offload=overview.can_offload,
            offload_juicefs=overview.offload_keeps_storage,
            offload_local_first=overview.offload_local_first,
            server_running=overview.server_running,
            logs=logs,
            confirm=confirm,
        )
        self.set_status(status)
        self.finish(html)

    async def show_refusal(
        self,
        caller: Caller,
        exc: ServiceError,
        form: dict[str, str] | None = None,
        at: str = PAGE,
    ) -> None:
        await self.render_page(caller, status=exc.status, error=exc.message, error_at=at, form=form)

    def form(self) -> dict[str, str]:
        return {k: self.get_body_argument(k) for k in self.request.body_arguments if k != "_xsrf"}


class JobsPage(Page):
    """The page: jobs and the submission form."""

    @web.authenticated
    async def get(self) -> None:
        await self.render_page(self.caller())


class SubmitPage(Page):
    """The form's post: submit, then back to the page with a notice (or the refusal, next to
    the form, which keeps what the user typed)."""

    @web.authenticated
    async def post(self) -> None:
        caller, form = self.caller(), self.form()
        try:
            config = self.service.snapshot()  # the form's meaning depends on it: one for both
            keeps_storage = config.jobs.offload.juicefs is not None
            job = await self.service.submit(caller, form_to_body(form, keeps_storage), config)
        except ServiceError as exc:
            await self.show_refusal(caller, exc, form, SUBMIT_FORM)
            return
        self.redirect(f"{self.service_prefix}?notice=Submitted+{job['id']}")


class CancelPage(Page):
    """A cancel button's post: confirmed (``confirm=1``, which the page's script sets once
    the user agreed), the API's cancel rule, then back to the page; unconfirmed (without
    JavaScript), the page asks first."""

    @web.authenticated
    async def post(self, job_id: str) -> None:
        caller = self.caller()
        try:
            if self.get_body_argument("confirm", "") != "1":
                job = await self.service.job(caller, job_id)
                await self.render_page(caller, confirm=job)
                return
            await self.service.cancel(caller, job_id)
        except ServiceError as exc:
            await self.show_refusal(caller, exc, at=job_id)
            return
        self.redirect(f"{self.service_prefix}?notice=Cancelled+{job_id}")


class LogsPage(Page):
    """A job's status and logs on the page (the last ``PAGE_TAIL`` lines of each pod),
    followed by the page's script while the job runs."""

    @web.authenticated
    async def get(self, job_id: str) -> None:
        caller = self.caller()
        try:
            job = await self.service.job(caller, job_id)
            async with self.service.logs(caller, job_id, PAGE_TAIL) as logs:
                pods = [pod async for pod in logs]
        except ServiceError as exc:
            await self.show_refusal(caller, exc)
            return
        await self.render_page(caller, logs={"id": job_id, "job": job, "pods": pods})
