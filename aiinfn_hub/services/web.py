"""The tornado side of a hub service: HubOAuth, who the caller is, XSRF, errors, the server.

Users authenticate with the hub: their browser session (OAuth, the service's cookie) or a
token (``Authorization: token …`` or ``Bearer …``, e.g. their server's
``$JUPYTERHUB_API_TOKEN``).

Cross-site requests: a cookie-authenticated request that changes something needs the page's
XSRF token, whatever else it carries (e.g. the ``Authorization: Basic`` a browser adds behind
an authenticating proxy); only a valid hub token exempts a request. The service's cookies are
``SameSite=Lax`` and its pages cannot be framed by other sites (``SECURITY_HEADERS``).

Errors: a handler raises :class:`~.errors.ServiceError`; JSON handlers answer
``{"error", "message"}`` with its status, as they do tornado's own errors (404, 405, XSRF).

The hub is asked who a token is at most once per token every ``ServiceAuth.cache_max_age``
seconds (60 by default: a token revoked on the hub keeps working here for at most that long),
concurrent requests with the same unknown token share one lookup, and asking never blocks the
service's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Integer, default

from .caller import Caller
from .errors import ServiceError

SAFE_SAMESITE = ("lax", "strict")
# other sites may not frame the pages (clickjacking the buttons that change something)
SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
log = logging.getLogger("aiinfn_hub.services")


class ServiceAuth(HubOAuth):  # type: ignore[misc]
    """HubOAuth whose cookies are at least ``SameSite=Lax`` (others' pages cannot send them
    with a cross-site POST), whatever ``$JUPYTERHUB_COOKIE_OPTIONS`` says; whose answers about
    a token are kept ``cache_max_age`` seconds; and whose concurrent lookups of one token are
    one request to the hub."""

    cache_max_age = Integer(
        60,
        help="""How long (seconds) the hub's answer about a token or OAuth session is kept:
        requests with that token within this time do not ask the hub again.

        It bounds how long a token revoked on the hub (or a user removed from a group) still
        works at the service. Default: 60 (JupyterHub's own HubAuth default is 300); 0 keeps
        answers forever, which is never wanted here.""",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # lookups in flight, by session and token digest: later callers await the first's
        self._lookups: dict[tuple[str, str], asyncio.Future[Any]] = {}

    def user_for_token(
        self, token: str, use_cache: bool = True, session_id: str = "", *, sync: bool = True
    ) -> Any:
        """HubAuth's lookup; asynchronous cached lookups of one token in flight at the same
        time share one request to the hub (a burst of requests with a new token would
        otherwise each miss the cache and ask)."""
        if sync or not use_cache:
            return super().user_for_token(token, use_cache, session_id, sync=sync)
        return self._shared_lookup(token, session_id)

    async def _shared_lookup(self, token: str, session_id: str) -> Any:
        key = (session_id, hashlib.sha256(token.encode("utf8", "replace")).hexdigest())
        pending = self._lookups.get(key)
        if pending is None:
            lookup: Awaitable[Any] = super().user_for_token(token, True, session_id, sync=False)
            pending = asyncio.ensure_future(lookup)
            self._lookups[key] = pending
            pending.add_done_callback(lambda done: self._forget(key, done))
        # one waiter cancelled (its client went away) must not cancel the others' lookup
        return await asyncio.shield(pending)

    def _forget(self, key: tuple[str, str], done: asyncio.Future[Any]) -> None:
        self._lookups.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: the waiters got it (or all went away)

    def get_user(self, handler: Any, *, sync: bool = True) -> Any:
        """HubAuth's, except that a :class:`ServiceHandler` already identified (in its
        ``prepare``, without blocking) is answered at once: ``HubOAuthenticated`` asks
        synchronously, which runs the lookup on a thread and blocks the event loop."""
        if sync and isinstance(handler, ServiceHandler) and handler.identified:
            return handler.hub_user
        return super().get_user(handler, sync=sync)

    @default("cookie_options")
    def _lax_cookie_options(self) -> dict[str, Any]:
        options = dict(self._default_cookie_options())
        if str(options.get("samesite", "")).lower() not in SAFE_SAMESITE:
            options["samesite"] = "Lax"
        return options


class Authenticated(HubOAuthenticated):  # type: ignore[misc]
    """The application's HubOAuth (``ServiceAuth``) and the security headers on every answer."""

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


class ServiceHandler(Authenticated, web.RequestHandler):
    """A request of a known caller: XSRF checked for changes, ``ServiceError`` sent with its
    status."""

    _caller_known = False
    identified = False  # the hub was asked (``prepare``)
    hub_user: Mapping[str, Any] | None = None  # its answer

    @property
    def service_prefix(self) -> str:
        """The service's URL prefix (``/services/<name>/``)."""
        return str(self.settings["service_prefix"])

    def check_xsrf_cookie(self) -> None:
        """Cookie-authenticated changes need the XSRF token; only a valid hub token (header)
        exempts a request, as HubOAuth decides. Tornado and HubOAuth ask before the caller is
        known: that first call is deferred to ``prepare``."""
        if not self._caller_known:
            return
        super().check_xsrf_cookie()

    async def prepare(self) -> None:
        """Who is calling (asked without blocking the loop), then the XSRF check for changes
        (subclasses overriding this must await it first)."""
        # a token first (then exempt from XSRF), else the cookie
        self.hub_user = await self.hub_auth.get_user(self, sync=False)
        self.identified = True
        _ = self.current_user  # HubOAuthenticated's checks of the answer (access scopes)
        self._caller_known = True
        if self.request.method not in SAFE_METHODS:
            self.check_xsrf_cookie()

    def caller(self) -> Caller:
        """Who is calling; 403 when nobody signed in and no token was sent."""
        model: Mapping[str, Any] | None = self.current_user
        if not model:
            raise ServiceError(
                403,
                "forbidden",
                "sign in to the hub, or send 'Authorization: token <your JupyterHub API token>'",
            )
        return Caller.from_hub_model(model)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """A :class:`ServiceError` raised by a handler is sent with its own status."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ServiceError):
            status_code = error.status
        super().send_error(status_code, **kwargs)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """A refusal is no server error: only failures of the service (5xx) are logged."""
        if isinstance(value, ServiceError):
            if value.status >= 500:
                log.warning("%s %s: %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)


class JsonHandler(ServiceHandler):
    """JSON in, JSON out; every error is ``{"error", "message"}``."""

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json_text(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ServiceError):
            code, message = error.code, error.message
        elif isinstance(error, web.HTTPError) and error.log_message:
            code = error_code(status_code)
            message = error.log_message % error.args if error.args else error.log_message
        else:
            code, message = error_code(status_code), self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json_text({"error": code, "message": message}))


class NotFoundHandler(JsonHandler):
    """Any other path under the API: a JSON 404 (after the XSRF check, as every handler)."""

    async def prepare(self) -> None:
        await super().prepare()
        raise web.HTTPError(404, "no such API path")


def json_text(data: Any) -> str:
    return json.dumps(data)


def error_code(status: int) -> str:
    """The short code of tornado's own errors."""
    return {
        400: "bad-request",
        403: "forbidden",
        404: "not-found",
        405: "bad-method",
        413: "too-large",
    }.get(status, "error")


def make_application(
    prefix: str, handlers: list[Any], hub_auth: ServiceAuth | None = None, **settings: Any
) -> web.Application:
    """The service's application: ``handlers``, the OAuth callback at ``prefix/oauth_callback``,
    HubOAuth (``hub_auth``: made from the hub's environment when not given) and XSRF cookies
    (``SameSite=Lax``, HTTP only). ``settings`` are added (e.g. the service's own object)."""
    return web.Application(
        [*handlers, (url_path_join(prefix, "oauth_callback"), OAuthCallbackHandler)],
        service_prefix=prefix,
        hub_auth=hub_auth or ServiceAuth(),
        cookie_secret=os.urandom(32),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"samesite": "Lax", "httponly": True},
        **settings,
    )


def serve_http(app: web.Application, host: str, port: int, max_body_size: int) -> HTTPServer:
    """Listen with a body limit: larger bodies are refused (400) before they are read."""
    server = HTTPServer(app, max_body_size=max_body_size)
    server.listen(port, address=host)
    return server


def bind_address(env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Host and port from ``$JUPYTERHUB_SERVICE_URL`` (set by the hub for its services); the
    host from ``$AIINFN_SERVICE_BIND_HOST`` when set: in the hub's pod the URL names the hub's
    Kubernetes Service (e.g. ``http://hub:10101``), an address the pod cannot bind, so the
    service listens on the pod's own (``0.0.0.0``) and the Service routes to it."""
    env = os.environ if env is None else env
    url = urlparse(env.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    host = env.get("AIINFN_SERVICE_BIND_HOST") or url.hostname or "127.0.0.1"
    return host, url.port or 80


def service_prefix(env: Mapping[str, str] | None = None, name: str = "") -> str:
    """``$JUPYTERHUB_SERVICE_PREFIX`` (set by the hub), else ``/services/<name>/``."""
    env = os.environ if env is None else env
    return env.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{name}/"
