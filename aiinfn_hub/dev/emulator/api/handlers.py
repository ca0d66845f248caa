"""Request handler plumbing: ``Status`` errors, client hang-ups, and what every resource
verb shares (the URL target, faults, bodies, answers).
"""

from __future__ import annotations

import asyncio
import json
import select
import uuid
from typing import Any

import tornado.web
import yaml

from .. import protobuf
from ..errors import ApiError
from ..resources import ResourceType
from ..store import Store
from . import validation
from .faults import Faults
from .paths import Target, parse_bool, parse_path, with_version
from .tables import table

JSON = dict[str, Any]
# kube-apiserver's --max-request-body-bytes default: a body is decoded only below it
MAX_BODY_BYTES = 3 * 1024 * 1024
# what a create or update body may be in (the real server also takes CBOR)
OBJECT_MEDIA_TYPES = ("application/json", "application/yaml", protobuf.MEDIA_TYPE)
# poll() events of a socket whose peer has closed its side or that failed (Linux)
_HUNG_UP = select.POLLRDHUP | select.POLLHUP | select.POLLERR


def success_status(code: int = 200, details: JSON | None = None) -> JSON:
    """The ``Status`` of a successful call that returns no object (deletes, bindings)."""
    body: JSON = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    if code != 200:
        body["code"] = code
    return body


class EmulatorHandler(tornado.web.RequestHandler):
    """Common plumbing: JSON bodies, ``Status`` errors, the store and the faults."""

    def initialize(self, store: Store, faults: Faults, validate: bool) -> None:
        self.store = store
        self.faults = faults
        self.validate = validate
        self.client_gone = False

    def on_connection_close(self) -> None:
        self.client_gone = True

    def client_closed(self) -> bool:
        """Whether the client hung up; long streams ask, as tornado learns it only on a read.

        The socket's "peer closed its side" (or error) state means the client went away, like
        Go's request context being cancelled when a watch client goes away. It is asked of the
        kernel, not read: over TLS the bytes waiting (a close_notify alert) are not for us.
        """
        if self.client_gone:
            return True
        stream = getattr(self.request.connection, "stream", None)
        sock = getattr(stream, "socket", None)
        if sock is None or sock.fileno() < 0:
            self.client_gone = True
            return True
        poller = select.poll()
        poller.register(sock.fileno(), _HUNG_UP)
        try:
            events = poller.poll(0)
        except OSError:
            events = [(sock.fileno(), select.POLLERR)]
        self.client_gone = any(mask & _HUNG_UP for _, mask in events)
        return self.client_gone

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # API errors are answers, not crashes: the access log has them already
        if not isinstance(value, ApiError):
            super().log_exception(typ, value, tb)

    def write_json(self, body: Any, status: int = 200) -> None:
        """Answer ``body`` as JSON with ``status``."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Audit-Id", str(uuid.uuid4()))
        self.finish(json.dumps(body, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error as a ``Status`` object, whatever raised it."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, tornado.web.HTTPError):
            reason = {404: "NotFound", 405: "MethodNotAllowed", 400: "BadRequest"}.get(
                exc.status_code, "InternalError" if exc.status_code >= 500 else "BadRequest"
            )
            error = ApiError(exc.status_code, reason, exc.log_message or self._reason)
        else:
            error = ApiError(500, "InternalError", f"Internal error occurred: {exc}")
        self.clear_header("Warning")
        self.set_status(error.code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error.status()))

    def query(self, name: str) -> str | None:
        """One query parameter (the last one when repeated), or None."""
        return self.get_query_argument(name, None)


class ResourceBase(EmulatorHandler):
    """What every verb on ``/api/...`` and ``/apis/...`` shares: the parsed target, fault
    injection before anything else, body decoding and answers (JSON or Table)."""

    target: Target

    async def prepare(self) -> None:
        """Parse the path, answer discovery documents, then apply injected faults."""
        parsed = parse_path(self.request.path, self.store.kinds)
        if parsed is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not isinstance(parsed, Target):
            if self.request.method != "GET":
                raise ApiError.method_not_allowed()
            self.write_json(parsed)
            return
        self.target = parsed
        verb = self._verb()
        delay = self.faults.latency(verb, parsed.rt.plural)
        if delay:
            await asyncio.sleep(delay)
        error = self.faults.take(verb, parsed.rt.plural, parsed.namespace)
        if error is not None:
            raise error

    def _verb(self) -> str:
        t, method = self.target, self.request.method
        if method == "GET":
            if t.watch_path:
                return "watch"
            if t.name:
                return "get"
            return "watch" if self._watching() else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if t.name else "deletecollection",
        }.get(method or "", "get")

    def _watching(self) -> bool:
        return self.target.watch_path or parse_bool(self.query("watch"), "watch")

    def _body(self) -> Any:
        raw = self.request.body or b""
        ctype = self._content_type()
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError.too_large(MAX_BODY_BYTES)
        if ctype == protobuf.MEDIA_TYPE:
            return self._protobuf_body(raw)
        try:
            if ctype in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw) if raw else None
        except (ValueError, RecursionError, yaml.YAMLError) as exc:
            raise ApiError.bad_request(f"the request body is not valid JSON/YAML: {exc}") from exc

    def _protobuf_body(self, raw: bytes) -> JSON:
        """A Go client's protobuf body (kubectl 1.31+ sends built-in objects so): 415 when no
        schema for its kind is known here, as from a server that cannot decode it."""
        try:
            return protobuf.decoder().decode(raw)
        except protobuf.UnknownKind as exc:
            raise ApiError.unsupported_object_media_type(str(exc)) from exc
        except protobuf.ProtobufError as exc:
            raise ApiError.bad_request(str(exc)) from exc

    def _content_type(self) -> str:
        return self.request.headers.get("Content-Type", "application/json").split(";")[0].strip()

    def _object_body(self) -> JSON:
        ctype = self._content_type()
        if ctype not in OBJECT_MEDIA_TYPES:
            raise ApiError.unsupported_object_media_type(f"got {ctype!r}")
        body = self._body()
        if not isinstance(body, dict):
            raise ApiError.bad_request(
                f"the body of the request must be a {self.target.rt.kind} object"
            )
        return body

    def _existing(self) -> JSON:
        t = self.target
        obj = self.store.get(t.rt, t.namespace, t.name or "")
        if obj is None:
            raise ApiError.not_found(t.rt, t.name or "")
        return obj

    def _answer(self, obj: JSON, status: int = 200) -> None:
        t = self.target
        if self._wants_table():
            rv = obj["metadata"].get("resourceVersion", "")
            columns = self.store.kinds.printer_columns(t.rt, t.version)
            self.write_json(table(t.rt, [obj], rv, self._include_object(), columns), status)
            return
        obj = self.store.kinds.served_view(t.rt, obj, t.version)
        self.write_json(with_version(t.rt, obj, t.version), status)

    def _wants_table(self) -> bool:
        return "as=Table" in self.request.headers.get("Accept", "")

    def _include_object(self) -> str:
        return self.query("includeObject") or "PartialObjectMetadata"

    def _dry_run(self, options: JSON | None = None) -> bool:
        values = self.get_query_arguments("dryRun") + list((options or {}).get("dryRun") or [])
        for value in values:
            if value != "All":
                raise ApiError.bad_request(f'dryRun: Unsupported value: "{value}"')
        return bool(values)

    def _set_warnings(self, warnings: list[str]) -> None:
        for warning in warnings:
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.add_header("Warning", f'299 - "{escaped}"')

    def _normalise(self, obj: JSON) -> JSON:
        """Kind, apiVersion and namespace of a body checked against the URL."""
        t = self.target
        kind = obj.get("kind")
        if kind not in (None, "", t.rt.kind):
            raise ApiError.bad_request(
                f"the kind in the request body ({kind}) does not match the resource ({t.rt.kind})"
            )
        api_version = obj.get("apiVersion")
        if api_version not in (None, "", t.api_version):
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({t.api_version})"
            )
        obj["kind"] = t.rt.kind
        obj["apiVersion"] = t.api_version
        if not t.rt.custom:
            validation.drop_unset(obj)
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        if t.rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and t.namespace and body_ns != t.namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = t.namespace or body_ns
        else:
            meta.pop("namespace", None)
        return obj

    def _decode(self, obj: JSON) -> validation.Decoded:
        if not self.validate:
            return validation.Decoded()
        t = self.target
        mode = validation.check_field_validation(self.query("fieldValidation"))
        return validation.decode(t.rt, obj, mode, self.store.kinds.schema(t.rt, t.version))


def status_is_subresource(rt: ResourceType) -> bool:
    """Kinds with a status subresource ignore status in main-resource writes."""
    return "status" in rt.subresources
