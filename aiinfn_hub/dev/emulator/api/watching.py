"""Watch streams: newline-delimited JSON events, as ``?watch=true`` answers.

Semantics (API concepts, "Efficient detection of changes"):

- no resourceVersion, or "0": synthetic ADDED events for the current matching objects, then
  live events; ``sendInitialEvents=true`` does the same from any version and, with bookmarks
  allowed, ends the initial events with a bookmark annotated ``k8s.io/initial-events-end``;
- a resourceVersion: only newer events, from the store's history; too old is an ERROR event
  with a 410 Expired Status (the HTTP status stays 200, as on the real server);
- selectors apply to each event: an object entering the selection is ADDED, leaving it DELETED;
- ``timeoutSeconds`` ends the stream; ``allowWatchBookmarks`` adds periodic BOOKMARK events;
- a stream ends at once when the store closes its watcher (shutdown, injected faults).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..store import Store, Watcher, WatchEvent
from .listing import Query, Selection, selection
from .paths import Target, parse_bool, with_version

JSON = dict[str, Any]
Send = Callable[[JSON], Awaitable[None]]
BOOKMARK_INTERVAL = 5.0  # seconds; the real server sends one about every minute
# how often an idle stream checks that its client is still there
CLIENT_CHECK_INTERVAL = 0.5


@dataclass(frozen=True)
class WatchRequest:
    """The query parameters of a watch."""

    since: int | None
    timeout: float
    bookmarks: bool
    initial_events: bool

    @classmethod
    def parse(cls, query: Query) -> WatchRequest:
        """Read the watch parameters from the query (400 on bad values)."""
        rv_text = query("resourceVersion") or ""
        initial = parse_bool(query("sendInitialEvents"), "sendInitialEvents")
        since: int | None = None
        if rv_text not in ("", "0") and not initial:
            try:
                since = int(rv_text)
            except ValueError as exc:
                raise ApiError.bad_request(f"invalid resource version: {rv_text}") from exc
        timeout_text = query("timeoutSeconds") or ""
        try:
            timeout = float(timeout_text) if timeout_text else 0.0
        except ValueError as exc:
            raise ApiError.bad_request(f"invalid timeoutSeconds: {timeout_text}") from exc
        if timeout <= 0:
            # the server's own limit: a random 30-60 minutes, spreading reconnections
            timeout = random.uniform(1800, 3600)
        return cls(
            since,
            timeout,
            parse_bool(query("allowWatchBookmarks"), "allowWatchBookmarks"),
            initial,
        )


class WatchStream:
    """One open watch: replays or lists what it must, then forwards store events."""

    def __init__(self, store: Store, target: Target, query: Query) -> None:
        self.store = store
        self.target = target
        self.select: Selection = selection(target, query)
        if target.name is not None:
            # the legacy single-object watch path selects by name
            self.select = Selection(
                self.select.labels,
                _and_named(self.select.fields, target.name),
            )
        self.request = WatchRequest.parse(query)

    def open(self) -> Watcher:
        """Subscribe; ``ApiError`` 410 when the requested version is no longer in history."""
        return self.store.watch(self.target.rt, self.target.namespace, self.request.since)

    async def run(self, watcher: Watcher, send: Send, closed: Callable[[], bool]) -> None:
        """Stream until the timeout, the client leaves (``closed()``) or the watcher closes."""
        deadline = time.monotonic() + self.request.timeout
        if self.request.since is None:
            # the subscription came first, so no change between list and watch is lost
            for obj in self.store.list(self.target.rt, self.target.namespace):
                if self.select(obj):
                    await send({"type": "ADDED", "object": self._out(obj)})
            if self.request.initial_events and self.request.bookmarks:
                await send(self.bookmark(initial_end=True))
        last_bookmark = time.monotonic()
        while not closed():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            wait = min(remaining, CLIENT_CHECK_INTERVAL)
            if self.request.bookmarks:
                wait = min(wait, BOOKMARK_INTERVAL)
            try:
                event = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if self.request.bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_INTERVAL:
                    await send(self.bookmark())
                    last_bookmark = time.monotonic()
                continue
            if event is None:
                ending = self.broken_event(watcher.break_mode)
                if ending is not None:
                    await send(ending)
                return
            out = self.translate(event)
            if out is not None:
                await send(out)

    def translate(self, event: WatchEvent) -> JSON | None:
        """The event as this watcher sees it through its selectors (None: not visible)."""
        now, before = self.select(event.obj), self.select(event.old)
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
        return {"type": kind, "object": self._out(event.obj)}

    def bookmark(self, initial_end: bool = False) -> JSON:
        """A BOOKMARK: only kind, apiVersion and the current resourceVersion."""
        meta: JSON = {"resourceVersion": str(self.store.resource_version)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {
            "type": "BOOKMARK",
            "object": {
                "kind": self.target.rt.kind,
                "apiVersion": self.target.api_version,
                "metadata": meta,
            },
        }

    def broken_event(self, mode: str) -> JSON | None:
        """How a stream closed by the store ends: ``gone`` (410), ``error`` (500) or nothing."""
        if mode == "gone":
            status = ApiError.gone(self.store.oldest_watchable_rv, self.store.resource_version)
            return {"type": "ERROR", "object": status.status()}
        if mode == "error":
            status = ApiError(500, "InternalError", "Internal error occurred: watch stream broken")
            return {"type": "ERROR", "object": status.status()}
        return None

    def _out(self, obj: JSON) -> JSON:
        t = self.target
        return with_version(t.rt, self.store.kinds.served_view(t.rt, obj, t.version), t.version)


def _and_named(fields: Callable[[JSON], bool], name: str) -> Callable[[JSON], bool]:
    def match(obj: JSON) -> bool:
        return bool(obj["metadata"].get("name") == name) and fields(obj)

    return match


def encode_event(event: JSON) -> str:
    """One line of the stream."""
    return json.dumps(event, separators=(",", ":")) + "\n"
