"""The REST API server: ``/api`` and ``/apis`` paths routed onto the store, as tornado handlers.

Every request for a resource goes through ``ResourceHandler``: fault injection first, then the
verb (``reads``, ``writes``, ``deletes``) with the real API server's order of checks: decode,
admission, validation, storage. Errors are always ``Status`` objects, because clients
(KubeSpawner's reflector among them) read ``message`` from the body.
"""

from __future__ import annotations

import json

import tornado.web

from ..errors import ApiError
from ..store import Store
from . import discovery, validation
from .deletes import DeleteVerbs
from .faults import Faults
from .handlers import EmulatorHandler
from .reads import ReadVerbs
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
            self.write_json(discovery.openapi_v3_index())
            return
        parts = rest.strip("/").split("/")
        doc = None
        if parts[0] == "api" and len(parts) == 2:
            doc = discovery.openapi_v3_document("", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = discovery.openapi_v3_document(parts[1], parts[2])
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


def make_app(store: Store, faults: Faults, *, validate: bool = True) -> tornado.web.Application:
    """The emulator's tornado application over ``store``.

    ``validate=True`` checks written objects against the official schemas and the API server's
    own rules (needs the ``kubernetes-validate`` package); ``faults`` is attached to the store
    so it can break open watches.
    """
    faults.store = store
    if validate:
        validation.preload()
    args = {"store": store, "faults": faults, "validate": validate}
    return tornado.web.Application(
        [
            (r"/(?:healthz|readyz|livez)", HealthHandler, args),
            (r"/version/?", VersionHandler, args),
            (r"/_emulator/faults", FaultsHandler, args),
            (r"/openapi/v3/?(.*)", OpenAPIHandler, args),
            (r"/apis?(?:/.*)?", ResourceHandler, args),
            (r".*", NotFoundHandler, args),
        ],
        compress_response=False,
    )
