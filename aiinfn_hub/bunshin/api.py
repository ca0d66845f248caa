"""The JSON API under ``/services/bunshin/api/v1/``: each handler parses the request, calls
:class:`~.service.JobService` with the caller and sends the answer. Errors are
``{"error", "message"}`` with their status (see ``services.web``)."""

from __future__ import annotations

import json
import re

from ..services.web import JsonHandler
from .errors import BunshinError
from .service import JobService

_TAIL = re.compile(r"[0-9]{1,7}")  # ASCII digits only: str.isdigit() also takes "²"


def parse_tail(text: str | None) -> int | None:
    """``tail``: a whole number of lines in ASCII digits, or None."""
    if text is None:
        return None
    if not _TAIL.fullmatch(text):
        raise BunshinError(400, "bad-request", "tail: expected a number of lines (0-9999999)")
    return int(text)


class ApiHandler(JsonHandler):
    """A handler of the API, with the application's :class:`JobService`."""

    @property
    def service(self) -> JobService:
        service: JobService = self.settings["bunshin"]
        return service


class JobsHandler(ApiHandler):
    """``GET jobs`` (own; admins ``?user=`` / ``?all=1``), ``POST jobs`` (submit)."""

    async def get(self) -> None:
        user = self.get_argument("user", None)
        everyone = self.get_argument("all", "") in ("1", "true")
        self.send_json(await self.service.list_jobs(self.caller(), user, everyone))

    async def post(self) -> None:
        self.send_json(await self.service.submit_json(self.caller(), self.request.body), 201)


class JobHandler(ApiHandler):
    """``GET jobs/{id}``, ``DELETE jobs/{id}`` (cancel)."""

    async def get(self, job_id: str) -> None:
        self.send_json(await self.service.job(self.caller(), job_id))

    async def delete(self, job_id: str) -> None:
        self.send_json(await self.service.cancel(self.caller(), job_id))


class JobLogsHandler(ApiHandler):
    """``GET jobs/{id}/logs?tail=N``."""

    async def get(self, job_id: str) -> None:
        """Streamed pod by pod: the answer never holds more than one pod's (capped) log."""
        tail = parse_tail(self.get_argument("tail", None))
        async with self.service.logs(self.caller(), job_id, tail) as logs:
            self.set_header("Content-Type", "application/json")
            self.write(f'{{"id": {json.dumps(job_id)}, "pods": [')
            first = True
            async for pod in logs:
                self.write(("" if first else ", ") + json.dumps(pod, ensure_ascii=False))
                first = False
                await self.flush()
        truncated, message = json.dumps(logs.truncated), json.dumps(logs.message)
        self.finish(f'], "truncated": {truncated}, "message": {message}}}')


class QueuesHandler(ApiHandler):
    """``GET queues``: the caller's projects' queues."""

    async def get(self) -> None:
        self.send_json(await self.service.queues(self.caller()))
