"""The REST API server: ``/api`` and ``/apis`` paths routed onto the store, as tornado handlers.

Every request for a resource goes through ``ResourceHandler``: fault injection first, then the
verb (``reads``, ``writes``, ``deletes``) with the real API server's order of checks: decode,
admission, validation, storage. Errors are always ``Status`` objects, because clients
(KubeSpawner's reflector among them) read ``message`` from the body.

Before any of that, the application itself turns away every request without the emulator's
bearer token (see ``access``), whatever its path, with kube-apiserver's 401 answer.
"""

from __future__ import annotations

import json
from typing import Any

import tornado.httputil
import tornado.web

from ..access import UNAUTHORIZED_MESSAGE, bearer_token_matches
from ..errors import ApiError
from ..store import Store
from . import discovery, validation
from .deletes import DeleteVerbs
from .faults import Faults
from .handlers import EmulatorHandler
from .reads import ReadVerbs
from .streams.handlers import stream_routes
from .streams.open_streams import OpenStreams
from .streams.targets import ContainerRuntime
from .writes import WriteVerbs


class HealthHandler(EmulatorHandler):
    """``/healthz``, ``/readyz``, ``/livez``: the plain ``ok`` of the real endpoints."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("ok")


class VersionHandler(EmulatorHandler):
    def get(self) -> None:
        self.write_json(discovery.version_info())


class NotFoundHandler(EmulatorHandler):
    def prepare(self) -> None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")


class OpenAPIHandler(EmulatorHandler):
    """``/openapi/v3`` and its per-group-version documents (``/openapi/v2`` is 404)."""

    def get(self, rest: str) -> None:
        if not rest:
            self.write_json(discovery.openapi_v3_index(self.store.kinds.all()))
            return
        parts = rest.strip("/").split("/")
        doc = None
        if parts[0] == "api" and len(parts) == 2:
            doc = discovery.openapi_v3_document("", parts[1], self.store.kinds.all())
        elif parts[0] == "apis" and len(parts) == 3:
            doc = discovery.openapi_v3_document(parts[1], parts[2], self.store.kinds.all())
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self.write_json(doc)


class FaultsHandler(EmulatorHandler):
    """``POST /_emulator/faults`` ``{"action": ..., **kwargs}``: fault injection over HTTP."""

    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise ApiError.bad_request(f"the fault request is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError.bad_request('the fault request must be an object {"action": ...}')
        action = str(body.pop("action", ""))
        self.faults.apply(action, body)
        self.write_json({"ok": True})


class ResourceHandler(ReadVerbs, WriteVerbs, DeleteVerbs):
    """Every ``/api/...`` and ``/apis/...`` path: discovery documents and resources."""


@tornado.web.stream_request_body
class UnauthorizedHandler(EmulatorHandler):
    """Any request without the bearer token: 401 ``Status`` "Unauthorized", as kube-apiserver
    answers; the body is streamed, so it is never read (nor buffered) before refusing."""

    def prepare(self) -> None:
        raise ApiError(401, "Unauthorized", UNAUTHORIZED_MESSAGE)

    def data_received(self, chunk: bytes) -> None:
        """Ignore the body of a refused request."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # the unread body ends the connection: say so, or a client reusing it reads an EOF
        self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)


class TokenCheckedApplication(tornado.web.Application):
    """A tornado application that hands every request without ``token`` to
    ``UnauthorizedHandler``, before routing: no handler, present or future, can forget it."""

    def __init__(
        self,
        rules: list[Any],
        *,
        token: str,
        handler_args: dict[str, Any],
        open_streams: OpenStreams,
    ) -> None:
        if not token:
            raise ValueError("the emulator's API needs a bearer token")
        super().__init__(rules, compress_response=False)
        self._token = token
        self._handler_args = handler_args
        # exec/attach/port-forward connections, which the server cannot close once upgraded
        self.open_streams = open_streams

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        if not bearer_token_matches(request.headers.get("Authorization"), self._token):
            return self.get_handler_delegate(request, UnauthorizedHandler, self._handler_args)
        return super().find_handler(request, **kwargs)


def make_app(
    store: Store,
    faults: Faults,
    *,
    token: str,
    validate: bool = True,
    runtime: ContainerRuntime | None = None,
) -> TokenCheckedApplication:
    """The emulator's tornado application over ``store``.

    Every request must carry ``Authorization: Bearer <token>`` (else 401). ``validate=True``
    checks written objects against the official schemas and the API server's own rules
    (needs the ``kubernetes-validate`` package); ``faults`` is attached to the store so it can
    break open watches. ``runtime`` gives ``exec``, ``attach`` and ``portforward`` the
    kubelet's local processes and pod IPs; without it every container counts as simulated.
    ``app.open_streams.close_all()`` ends their connections when the server stops.
    """
    faults.store = store
    if validate:
        validation.preload()
    args = {"store": store, "faults": faults, "validate": validate}
    open_streams = OpenStreams()
    return TokenCheckedApplication(
        [
            (r"/(?:healthz|readyz|livez)", HealthHandler, args),
            (r"/version/?", VersionHandler, args),
            (r"/_emulator/faults", FaultsHandler, args),
            (r"/openapi/v3/?(.*)", OpenAPIHandler, args),
            *stream_routes(args, runtime, open_streams),
            (r"/apis?(?:/.*)?", ResourceHandler, args),
            (r".*", NotFoundHandler, args),
        ],
        token=token,
        handler_args=args,
        open_streams=open_streams,
    )
