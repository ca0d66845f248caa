"""The Hub API, called with the service's own token (``$JUPYTERHUB_API_TOKEN``).

A user's model is read when it is needed, never kept (it says which server runs, and which
pod it is now); requests that need the same user's model at the same moment share one read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .errors import ServiceError

JSON = dict[str, Any]
log = logging.getLogger("aiinfn_hub.services")


class HubClient:
    """Reads users (with their servers) from the Hub API; failures are :class:`ServiceError`
    with what the user can do (404 for an unknown user, 503 while the hub does not answer)."""

    def __init__(self, api_url: str, token: str, timeout: float = 15.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.http = AsyncHTTPClient()
        self._reads: dict[str, asyncio.Future[JSON]] = {}

    async def user(self, username: str) -> JSON:
        """The user's model, with ``servers`` (and their ``state`` given ``admin:server_state``).

        A call while another for the same user is in flight gets that read's answer (or
        error): a read sent at most one round trip earlier, one request to the hub fewer."""
        pending = self._reads.get(username)
        if pending is None:
            pending = asyncio.ensure_future(self._read_user(username))
            self._reads[username] = pending
            pending.add_done_callback(lambda done: self._forget(username, done))
        # each caller gets its own copy: they may change it
        copy: JSON = json.loads(json.dumps(await asyncio.shield(pending)))
        return copy

    def _forget(self, username: str, done: asyncio.Future[JSON]) -> None:
        self._reads.pop(username, None)
        if not done.cancelled():
            done.exception()  # retrieved: the waiters got it (or all went away)

    async def _read_user(self, username: str) -> JSON:
        request = HTTPRequest(
            f"{self.api_url}/users/{quote(username, safe='')}",
            headers={"Authorization": f"token {self.token}"},
            request_timeout=self.timeout,
        )
        try:
            response = await self.http.fetch(request)
        except HTTPClientError as exc:
            if exc.code == 404:
                raise ServiceError(404, "not-found", "no such user on the hub") from None
            log.warning("Hub API: GET users/%s: %s", username, exc)
            raise ServiceError(503, "unavailable", "the hub did not answer; try again") from None
        except OSError as exc:
            log.warning("Hub API: GET users/%s: %s", username, exc)
            raise ServiceError(503, "unavailable", "the hub did not answer; try again") from None
        model: JSON = json.loads(response.body)
        return model
