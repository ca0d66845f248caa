"""The read verbs: get, list, watch, and the pods ``log`` subresource."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.iostream import StreamClosedError

from ..errors import ApiError
from .handlers import ResourceBase
from .listing import list_objects
from .pod_logs import initial_text, log_finished, parse_log_request, read_log
from .tables import table
from .watching import WatchStream, encode_event

JSON = dict[str, Any]

LOG_POLL_SECONDS = 0.2


class ReadVerbs(ResourceBase):
    """GET on a resource path."""

    async def get(self) -> None:
        if self._finished:
            return
        t = self.target
        if t.watch_path and t.subresource is None:
            await self._watch()  # the legacy /watch/ paths, one object's included
            return
        if t.name is None:
            if self._watching():
                await self._watch()
            else:
                self._list()
            return
        if t.subresource == "log":
            await self._pod_log()
            return
        if t.subresource not in (None, "status"):
            raise ApiError.method_not_allowed()
        self._answer(self._existing())

    def _list(self) -> None:
        t = self.target
        items, meta = list_objects(self.store, t, self.query)
        if self._wants_table():
            columns = self.store.kinds.printer_columns(t.rt, t.version)
            rv = meta["resourceVersion"]
            self.write_json(table(t.rt, items, rv, self._include_object(), columns))
            return
        view = self.store.kinds.served_view
        out_items = [
            {k: v for k, v in view(t.rt, o, t.version).items() if k not in ("kind", "apiVersion")}
            for o in items
        ]
        self.write_json(
            {
                "kind": t.rt.list_kind,
                "apiVersion": t.api_version,
                "metadata": meta,
                "items": out_items,
            }
        )

    async def _watch(self) -> None:
        stream = WatchStream(self.store, self.target, self.query)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache, private")

        as_table = self._wants_table()
        columns = self.store.kinds.printer_columns(self.target.rt, self.target.version)

        async def send(event: JSON) -> None:
            if as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                obj = event["object"]
                rv = obj["metadata"].get("resourceVersion", "")
                event = {
                    **event,
                    "object": table(self.target.rt, [obj], rv, self._include_object(), columns),
                }
            self.write(encode_event(event))
            await self.flush()

        try:
            watcher = stream.open()
        except ApiError as exc:
            await send({"type": "ERROR", "object": exc.status()})
            self.finish()
            return
        try:
            await self.flush()  # headers now: clients wait for them before reading events
            await stream.run(watcher, send, self.client_closed)
        except StreamClosedError:
            pass
        finally:
            self.store.unwatch(watcher)
        if not self._finished and not self.client_gone:
            self.finish()

    async def _pod_log(self) -> None:
        pod = self._existing()
        request = parse_log_request(pod, self.query)
        text = initial_text(self.store, pod, request)
        self.set_header("Content-Type", "text/plain")
        if not request.follow:
            self.finish(text)
            return
        self.write(text)
        sent = len(read_log(self.store.logs.get(request.key)))
        try:
            while not self.client_closed():
                await self.flush()
                finished = log_finished(self.store, request)
                full = read_log(self.store.logs.get(request.key))
                if len(full) > sent:
                    self.write(full[sent:])
                    sent = len(full)
                if finished:
                    break
                await asyncio.sleep(LOG_POLL_SECONDS)
        except StreamClosedError:
            return
        if not self.client_gone:
            self.finish()
