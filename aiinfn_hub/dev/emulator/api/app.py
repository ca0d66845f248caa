"""The REST API: routing of ``/api`` and ``/apis`` paths onto the store, watches included."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.web
import yaml
from tornado.iostream import StreamClosedError

from ..deletion import delete_object, remove_if_finalized
from ..errors import ApiError
from ..resources import NAMESPACES, PODS, RESOURCE_TYPES, ResourceType, resource_type
from ..store import Store, WatchEvent
from . import discovery, validation
from .admission import STATUS_KINDS, default_on_create, fold_string_data
from .faults import Faults
from .patching import json_patch, merge_patch, strategic_merge_patch
from .selectors import labels_match, parse_field_selector, parse_label_selector
from .tables import table

JSON = dict[str, Any]
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_POD_SPEC_MUTABLE = {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"}


def parse_bool(value: str | None, name: str) -> bool:
    """Booleans in query strings are parsed like Go's ``strconv.ParseBool``."""
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError.bad_request(
        f'invalid value for {name}: strconv.ParseBool: parsing "{value}": invalid syntax'
    )


@dataclass
class Target:
    """What a resource URL points at."""

    rt: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


def parse_path(path: str) -> Target | JSON | None:
    """A resource target, a discovery document, or None for an unknown path."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/") if p]
    if parts[:1] == ["api"]:
        if len(parts) == 1:
            return discovery.core_versions()
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"]:
        if len(parts) == 1:
            return discovery.api_group_list()
        if len(parts) == 2:
            return discovery.api_group(parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return discovery.resource_list(group, version)
    watch_path = rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        rt = resource_type(group, rest[2])
        if rt is not None and rt.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    rt = resource_type(group, rest[0])
    if rt is None or version not in rt.versions or len(rest) > 3:
        return None
    if rt.namespaced is False and namespace is not None:
        return None
    return Target(
        rt,
        version,
        namespace,
        rest[1] if len(rest) > 1 else None,
        rest[2] if len(rest) > 2 else None,
        watch_path,
    )


def _with_version(rt: ResourceType, obj: JSON, version: str) -> JSON:
    """The object as served at ``version`` (Kueue kinds are served at two versions)."""
    api_version = rt.api_version(version)
    if obj.get("apiVersion") == api_version and obj.get("kind") == rt.kind:
        return obj
    return {**obj, "apiVersion": api_version, "kind": rt.kind}


class EmulatorHandler(tornado.web.RequestHandler):
    """Common plumbing: JSON Status errors, faults, body parsing."""

    store: Store
    faults: Faults
    validate: bool

    def initialize(self, store: Store, faults: Faults, validate: bool) -> None:
        self.store = store
        self.faults = faults
        self.validate = validate
        self._closed = False

    def on_connection_close(self) -> None:
        self._closed = True

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # API errors are answers, not crashes: tornado's access log has them already
        if not isinstance(value, ApiError):
            super().log_exception(typ, value, tb)

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Audit-Id", str(uuid.uuid4()))
        self.finish(json.dumps(body, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, tornado.web.HTTPError):
            error = ApiError(
                exc.status_code,
                "BadRequest" if exc.status_code < 500 else "InternalError",
                exc.log_message or self._reason,
            )
        else:
            error = ApiError(500, "InternalError", f"Internal error occurred: {exc}")
        self.set_status(error.code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error.status()))

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.get_query_argument(name, default)


class HealthHandler(EmulatorHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish("ok")


class VersionHandler(EmulatorHandler):
    def get(self) -> None:
        self.write_json(discovery.version_info())


class NotFoundHandler(EmulatorHandler):
    def prepare(self) -> None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")


class OpenAPIHandler(EmulatorHandler):
    """``/openapi/v3`` and its per-group-version documents (``/openapi/v2`` is not served)."""

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
        body = json.loads(self.request.body or b"{}")
        action = body.pop("action", "")
        self.faults.apply(action, body)
        self.write_json({"ok": True})


class ResourceHandler(EmulatorHandler):
    """Every ``/api/...`` and ``/apis/...`` path."""

    target: Target

    async def prepare(self) -> None:
        parsed = parse_path(self.request.path)
        if parsed is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not isinstance(parsed, Target):
            if self.request.method != "GET":
                raise ApiError.method_not_allowed()
            self.write_json(parsed)
            return
        self.target = parsed
        verb = self._verb()
        resource = parsed.rt.plural
        delay = self.faults.latency(verb, resource)
        if delay:
            await asyncio.sleep(delay)
        error = self.faults.take(verb, resource, parsed.namespace)
        if error is not None:
            raise error

    def _verb(self) -> str:
        t, method = self.target, self.request.method
        if method == "GET":
            if t.name:
                return "get"
            watching = t.watch_path or parse_bool(self.query("watch"), "watch")
            return "watch" if watching else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if t.name else "deletecollection",
        }.get(method or "", "get")

    # -- helpers ---------------------------------------------------------------------------
    def _require_namespace(self) -> None:
        ns = self.target.namespace
        if ns is not None and self.store.get(NAMESPACES, None, ns) is None:
            raise ApiError.namespace_not_found(ns)

    def _body(self) -> Any:
        raw = self.request.body or b""
        ctype = self.request.headers.get("Content-Type", "application/json").split(";")[0]
        try:
            if ctype in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw) if raw else {}
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError.bad_request(f"the request body is not valid JSON/YAML: {exc}") from exc

    def _get_existing(self) -> JSON:
        t = self.target
        assert t.name is not None
        obj = self.store.get(t.rt, t.namespace, t.name)
        if obj is None:
            raise ApiError.not_found(t.rt, t.name)
        return obj

    def _out(self, obj: JSON, status: int = 200) -> None:
        t = self.target
        if self._wants_table():
            self.write_json(
                table(t.rt, [obj], obj["metadata"]["resourceVersion"], self._include_object()),
                status,
            )
            return
        self.write_json(_with_version(t.rt, obj, t.version), status)

    def _wants_table(self) -> bool:
        return "as=Table" in self.request.headers.get("Accept", "")

    def _include_object(self) -> str:
        return self.query("includeObject", "PartialObjectMetadata") or "PartialObjectMetadata"

    def _dry_run(self) -> bool:
        return "All" in self.get_query_arguments("dryRun")

    def _prepare_write(self, obj: JSON, *, creating: bool) -> list[str]:
        """Checks shared by create and update: kind, namespace, schema, semantics."""
        t = self.target
        if not isinstance(obj, dict):
            raise ApiError.bad_request(f"the body of a {t.rt.kind} must be a JSON object")
        kind = obj.get("kind")
        if kind is not None and kind != t.rt.kind:
            raise ApiError.bad_request(
                f"the kind in the body ({kind}) does not match the resource ({t.rt.kind})"
            )
        obj["kind"] = t.rt.kind
        obj["apiVersion"] = t.rt.api_version(t.version)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        if t.rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and t.namespace and body_ns != t.namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not "
                    "match the namespace sent on the request"
                )
            meta["namespace"] = t.namespace or body_ns or "default"
        if creating and not meta.get("name") and meta.get("generateName"):
            meta["name"] = ""  # filled by the store; validated below via generateName
        warnings: list[str] = []
        if self.validate:
            field_validation = self.query("fieldValidation", "Warn") or "Warn"
            probe = copy.deepcopy(obj)
            if not probe["metadata"].get("name") and meta.get("generateName"):
                probe["metadata"]["name"] = meta["generateName"] + "xxxxx"
            warnings = validation.check_schema(t.rt, probe, field_validation)
            # apply the dropped unknown fields to the real object too
            for key in list(obj):
                if key not in probe:
                    del obj[key]
            obj.update({k: v for k, v in probe.items() if k != "metadata"})
            validation.check_semantics(t.rt, probe)
        return warnings

    def _set_warnings(self, warnings: list[str]) -> None:
        for warning in warnings:
            self.add_header("Warning", f'299 - "{warning}"')

    # -- GET -------------------------------------------------------------------------------
    async def get(self) -> None:
        if self._finished:
            return
        t = self.target
        if t.name is None:
            if t.watch_path or parse_bool(self.query("watch"), "watch"):
                await self._watch()
            else:
                self._list()
            return
        if t.subresource == "log" and t.rt.key == PODS.key:
            await self._pod_log()
            return
        if t.subresource not in (None, "status"):
            raise ApiError.method_not_allowed()
        self._out(self._get_existing())

    def _selected(self) -> tuple[Any, Any]:
        t = self.target
        labels = parse_label_selector(self.query("labelSelector"))
        fields = parse_field_selector(self.query("fieldSelector"), t.rt)
        return labels, fields

    def _list(self) -> None:
        t = self.target
        labels, fields = self._selected()
        rv = self.query("resourceVersion")
        match = self.query("resourceVersionMatch")
        if match and match not in ("NotOlderThan", "Exact"):
            raise ApiError.bad_request(f'resourceVersionMatch: Unsupported value: "{match}"')
        if match and not rv:
            raise ApiError(
                422,
                "Invalid",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )
        if match == "Exact" and rv and rv != "0" and int(rv) != self.store.resource_version:
            raise ApiError.gone(int(rv), self.store.resource_version)
        items = [
            o for o in self.store.list(t.rt, t.namespace) if labels_match(labels, o) and fields(o)
        ]
        limit = int(self.query("limit") or 0)
        token = self.query("continue")
        list_rv = str(self.store.resource_version)
        meta: JSON = {"resourceVersion": list_rv}
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start_key, list_rv = state["start"], state["rv"]
                meta["resourceVersion"] = list_rv
            except (ValueError, KeyError) as exc:
                raise ApiError.bad_request("continue key is not valid") from exc
            items = [o for o in items if _sort_key(o) > tuple(start_key)]
        if limit and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            last = _sort_key(items[-1])
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"start": list(last), "rv": list_rv}).encode()
            ).decode()
            meta["remainingItemCount"] = remaining
        if self._wants_table():
            self.write_json(table(t.rt, items, meta["resourceVersion"], self._include_object()))
            return
        api_version = t.rt.api_version(t.version)
        out_items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        self.write_json(
            {
                "kind": t.rt.list_kind,
                "apiVersion": api_version,
                "metadata": meta,
                "items": out_items,
            }
        )

    async def _watch(self) -> None:
        t = self.target
        labels, fields = self._selected()

        def matches(obj: JSON | None) -> bool:
            return obj is not None and labels_match(labels, obj) and fields(obj)

        rv_text = self.query("resourceVersion") or ""
        # 0 or unset: the server's own limit (real servers pick 30-60 minutes)
        timeout = float(self.query("timeoutSeconds") or 0) or 1800.0
        bookmarks = parse_bool(self.query("allowWatchBookmarks"), "allowWatchBookmarks")
        initial = parse_bool(self.query("sendInitialEvents"), "sendInitialEvents")
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache, private")
        since: int | None = None
        if rv_text not in ("", "0") and not initial:
            try:
                since = int(rv_text)
            except ValueError as exc:
                raise ApiError.bad_request(f"invalid resource version: {rv_text}") from exc
        try:
            watcher = self.store.watch(t.rt, t.namespace, since)
        except ApiError as exc:
            await self._send({"type": "ERROR", "object": exc.status()})
            self.finish()
            return
        deadline = time.monotonic() + timeout
        try:
            if since is None:
                for obj in self.store.list(t.rt, t.namespace):
                    if matches(obj):
                        await self._send(
                            {"type": "ADDED", "object": _with_version(t.rt, obj, t.version)}
                        )
                if initial and bookmarks:
                    await self._send(self._bookmark(initial_end=True))
            else:
                await self.flush()
            last_bookmark = time.monotonic()
            while not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(remaining, 5.0) if bookmarks else remaining
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and time.monotonic() - last_bookmark >= 5.0:
                        await self._send(self._bookmark())
                        last_bookmark = time.monotonic()
                    continue
                if event is None:
                    await self._end_broken(watcher.break_mode)
                    break
                out = self._translate(event, matches)
                if out is not None:
                    await self._send(out)
        except StreamClosedError:
            pass
        finally:
            self.store.unwatch(watcher)
        if not self._finished and not self._closed:
            self.finish()

    async def _end_broken(self, mode: str) -> None:
        if mode == "gone":
            await self._send(
                {"type": "ERROR", "object": ApiError.gone(0, self.store.resource_version).status()}
            )
        elif mode == "error":
            await self._send(
                {
                    "type": "ERROR",
                    "object": ApiError(
                        500, "InternalError", "injected fault: watch broken"
                    ).status(),
                }
            )

    def _bookmark(self, initial_end: bool = False) -> JSON:
        meta: JSON = {"resourceVersion": str(self.store.resource_version)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {
            "type": "BOOKMARK",
            "object": {
                "kind": self.target.rt.kind,
                "apiVersion": self.target.rt.api_version(self.target.version),
                "metadata": meta,
            },
        }

    def _translate(self, event: WatchEvent, matches: Any) -> JSON | None:
        """Selector-aware event type: moving into the selection is ADDED, out is DELETED."""
        t = self.target
        now, before = matches(event.obj), matches(event.old)
        if event.type == "ADDED":
            kind = "ADDED" if now else None
        elif event.type == "DELETED":
            kind = "DELETED" if before or now else None
        elif now and before:
            kind = "MODIFIED"
        elif now:
            kind = "ADDED"
        elif before:
            kind = "DELETED"
        else:
            kind = None
        if kind is None:
            return None
        return {"type": kind, "object": _with_version(t.rt, event.obj, t.version)}

    async def _send(self, event: JSON) -> None:
        self.write(json.dumps(event, separators=(",", ":")) + "\n")
        await self.flush()

    async def _pod_log(self) -> None:
        t = self.target
        pod = self._get_existing()
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        init = [c["name"] for c in pod["spec"].get("initContainers") or []]
        name = self.query("container")
        if not name:
            if len(containers) != 1:
                raise ApiError.bad_request(
                    f"a container name must be specified for pod {t.name}, choose one of: "
                    f"[{' '.join(containers)}]"
                    + (f" or one of the init containers: [{' '.join(init)}]" if init else "")
                )
            name = containers[0]
        elif name not in containers + init:
            raise ApiError.bad_request(f"container {name} is not valid for pod {t.name}")
        key = (t.namespace or "", t.name or "", name)
        source = self.store.logs.get(key)
        if source is None:
            raise ApiError.bad_request(
                f'container "{name}" in pod "{t.name}" is waiting to start: ContainerCreating'
            )
        self.set_header("Content-Type", "text/plain")
        text = _read_log(source)
        tail = self.query("tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        self.write(text)
        if not parse_bool(self.query("follow"), "follow"):
            self.finish()
            return
        sent = len(_read_log(source))
        while not self._closed:
            await self.flush()
            await asyncio.sleep(0.2)
            current = self.store.get(PODS, t.namespace, t.name or "")
            full = _read_log(self.store.logs.get(key, ""))
            if len(full) > sent:
                self.write(full[sent:])
                sent = len(full)
            phase = (current or {}).get("status", {}).get("phase")
            if current is None or phase in ("Succeeded", "Failed"):
                break
        if not self._closed:
            self.finish()

    # -- POST ------------------------------------------------------------------------------
    def post(self) -> None:
        if self._finished:
            return
        t = self.target
        if t.subresource in ("binding", "eviction") and t.rt.key == PODS.key:
            self._pod_subresource_post()
            return
        if t.name is not None:
            raise ApiError.method_not_allowed()
        self._require_namespace()
        obj = self._body()
        warnings = self._prepare_write(obj, creating=True)
        meta = obj["metadata"]
        if not meta.get("name") and not meta.get("generateName"):
            raise ApiError.invalid(
                t.rt, "", [("metadata.name", "Required value: name or generateName is required")]
            )
        for server_field in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.uuid4())
        if t.rt.key in STATUS_KINDS:
            obj.pop("status", None)
        default_on_create(self.store, t.rt, obj)
        if self._dry_run():
            self._set_warnings(warnings)
            self._out(obj, 201)
            return
        created = self.store.create(t.rt, obj)
        if t.rt.key == NAMESPACES.key:
            self._create_default_service_account(created["metadata"]["name"])
        self._set_warnings(warnings)
        self._out(created, 201)

    def _create_default_service_account(self, namespace: str) -> None:
        from ..resources import SERVICEACCOUNTS

        if self.store.get(SERVICEACCOUNTS, namespace, "default") is None:
            self.store.create(
                SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": namespace}}
            )

    def _pod_subresource_post(self) -> None:
        t = self.target
        pod = self._get_existing()
        body = self._body()
        if t.subresource == "binding":
            node = (body.get("target") or {}).get("name")
            if not node:
                raise ApiError.bad_request("a binding needs target.name")
            if pod["spec"].get("nodeName"):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on pods/binding "
                    f'"{t.name}": pod {t.name} is already assigned to node '
                    f'"{pod["spec"]["nodeName"]}"',
                )
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = node
            self.store.update(PODS, new)
            self.write_json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
                201,
            )
            return
        options = body.get("deleteOptions") or {}
        delete_object(
            self.store,
            PODS,
            t.namespace,
            t.name or "",
            grace_period=options.get("gracePeriodSeconds"),
        )
        self.write_json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "code": 201,
            },
            201,
        )

    # -- PUT / PATCH -----------------------------------------------------------------------
    def put(self) -> None:
        if self._finished:
            return
        obj = self._body()
        self._update(
            obj,
            expected_rv=(obj.get("metadata") or {}).get("resourceVersion")
            if isinstance(obj, dict)
            else None,
        )

    def patch(self) -> None:
        if self._finished:
            return
        t = self.target
        current = self._get_existing()
        ctype = self.request.headers.get("Content-Type", "").split(";")[0]
        body = self._body()
        base = copy.deepcopy(current)
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError.bad_request("a JSON patch must be a list of operations")
            patched = json_patch(base, body)
        elif ctype == "application/merge-patch+json":
            patched = merge_patch(base, body)
        elif ctype == "application/strategic-merge-patch+json":
            if t.rt.custom:
                raise ApiError.unsupported_media_type(ctype)
            patched = strategic_merge_patch(base, body)
        elif ctype == "application/apply-patch+yaml":
            patched = merge_patch(base, body)
        else:
            raise ApiError.unsupported_media_type(ctype)
        if not isinstance(patched, dict):
            raise ApiError.bad_request("the patch did not produce an object")
        expected = (patched.get("metadata") or {}).get("resourceVersion")
        if expected == current["metadata"]["resourceVersion"]:
            expected = None  # only a resourceVersion the patch itself changed is a precondition
        self._update(patched, expected_rv=expected)

    def _update(self, obj: Any, expected_rv: str | None) -> None:
        t = self.target
        current = self._get_existing()
        if t.subresource not in (None, "status"):
            raise ApiError.method_not_allowed()
        if not isinstance(obj, dict):
            raise ApiError.bad_request(f"the body of a {t.rt.kind} must be a JSON object")
        meta = obj.setdefault("metadata", {})
        if meta.get("name") not in (None, t.name):
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not "
                f"match the name on the URL ({t.name})"
            )
        meta["name"] = t.name
        warnings = self._prepare_write(obj, creating=False)
        if t.subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = obj.get("status", {})
            if "resourceVersion" in meta:
                new["metadata"]["resourceVersion"] = meta["resourceVersion"]
        else:
            new = obj
            if t.rt.key in STATUS_KINDS or t.rt.kind in ("Node", "Namespace"):
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            if t.rt.kind == "Secret":
                fold_string_data(new)
            self._check_immutable(current, new)
        if self._dry_run():
            self._out(new)
            return
        updated = self.store.update(t.rt, new, expected_rv=expected_rv)
        if remove_if_finalized(self.store, t.rt, updated):
            updated = {**updated}
        self._set_warnings(warnings)
        self._out(updated)

    def _check_immutable(self, old: JSON, new: JSON) -> None:
        t = self.target
        name = t.name or ""
        if t.rt.kind == "Pod":
            old_spec, new_spec = old.get("spec", {}), copy.deepcopy(new.get("spec", {}))
            for key in _POD_SPEC_MUTABLE:
                new_spec.pop(key, None)
            comparable_old = {k: v for k, v in old_spec.items() if k not in _POD_SPEC_MUTABLE}
            for group in ("containers", "initContainers"):
                for a, b in zip(
                    comparable_old.get(group) or [], new_spec.get(group) or [], strict=False
                ):
                    b["image"] = a.get("image")
            # defaults the client may omit on update are filled from the stored object
            for key, value in comparable_old.items():
                new_spec.setdefault(key, value)
            if new_spec != comparable_old:
                raise ApiError.invalid(
                    t.rt,
                    name,
                    [
                        (
                            "spec",
                            "Forbidden: pod updates may not change fields other than "
                            "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                            "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                            "existing tolerations), `spec.terminationGracePeriodSeconds` "
                            "(allow it to "
                            "be set to 1 if it was previously negative)",
                        )
                    ],
                )
        elif t.rt.kind == "Job":
            old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
            if new_spec.get("selector", old_spec.get("selector")) != old_spec.get("selector"):
                raise ApiError.invalid(
                    t.rt, name, [("spec.selector", "Invalid value: field is immutable")]
                )
            new_spec.setdefault("selector", old_spec.get("selector"))
            if new_spec.get("template") != old_spec.get("template"):
                # the defaulted template labels are part of the stored template
                merged = strategic_merge_patch(old_spec.get("template"), new_spec.get("template"))
                if merged != old_spec.get("template"):
                    raise ApiError.invalid(
                        t.rt, name, [("spec.template", "Invalid value: field is immutable")]
                    )
                new_spec["template"] = old_spec.get("template")

    # -- DELETE ----------------------------------------------------------------------------
    def delete(self) -> None:
        if self._finished:
            return
        t = self.target
        body = self._body() if self.request.body else {}
        grace = self.query("gracePeriodSeconds")
        grace_period = int(grace) if grace is not None else body.get("gracePeriodSeconds")
        propagation = self.query("propagationPolicy") or body.get("propagationPolicy")
        orphan = self.query("orphanDependents") or body.get("orphanDependents")
        if propagation is None and orphan is not None:
            propagation = "Orphan" if str(orphan).lower() == "true" else "Background"
        if propagation not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(
                422,
                "Invalid",
                f'DeleteOptions.propagationPolicy: Unsupported value: "{propagation}"',
            )
        if t.name is None:
            self._delete_collection(grace_period, propagation)
            return
        if self._dry_run():
            self._out(self._get_existing())
            return
        result = delete_object(
            self.store,
            t.rt,
            t.namespace,
            t.name,
            grace_period=grace_period,
            propagation=propagation,
            preconditions=body.get("preconditions"),
        )
        if t.rt.key == PODS.key or (
            "deletionTimestamp" in result["metadata"]
            and (self.store.get(t.rt, t.namespace, t.name) is not None)
        ):
            self._out(result)
            return
        if t.rt.custom:
            self._out(result)
            return
        self.write_json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": t.name, "kind": t.rt.plural, "uid": result["metadata"]["uid"]},
            }
        )

    def _delete_collection(self, grace_period: int | None, propagation: str | None) -> None:
        t = self.target
        labels, fields = self._selected()
        deleted = []
        for obj in self.store.list(t.rt, t.namespace):
            if labels_match(labels, obj) and fields(obj):
                deleted.append(
                    delete_object(
                        self.store,
                        t.rt,
                        obj["metadata"].get("namespace"),
                        obj["metadata"]["name"],
                        grace_period=grace_period,
                        propagation=propagation,
                    )
                )
        self.write_json(
            {
                "kind": t.rt.list_kind,
                "apiVersion": t.rt.api_version(t.version),
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            }
        )


def _sort_key(obj: JSON) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _read_log(source: str | Path) -> str:
    if isinstance(source, Path):
        try:
            return source.read_text(errors="replace")
        except OSError:
            return ""
    return source


def make_app(store: Store, faults: Faults, *, validate: bool = True) -> tornado.web.Application:
    """The emulator's tornado application over ``store``."""
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


__all__ = ["RESOURCE_TYPES", "make_app", "parse_path"]
