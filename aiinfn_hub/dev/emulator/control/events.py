"""core/v1 Events, built and recorded as the real event recorder does (aggregated counts)."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from ..resources import EVENTS, ResourceType
from ..store import Store, now_rfc3339

JSON = dict[str, Any]


def event_object(
    involved: JSON,
    rt: ResourceType,
    reason: str,
    message: str,
    *,
    type_: str = "Normal",
    component: str,
    host: str | None = None,
    field_path: str | None = None,
) -> JSON:
    """An Event about ``involved`` (name ``<object>.<16 hex>``, like client-go's recorder)."""
    meta = involved["metadata"]
    now = now_rfc3339()
    ref: JSON = {
        "kind": rt.kind,
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "apiVersion": rt.api_version(),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if rt.namespaced:
        ref["namespace"] = meta.get("namespace", "default")
    if field_path:
        ref["fieldPath"] = field_path
    source: JSON = {"component": component}
    if host:
        source["host"] = host
    return {
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta.get("namespace", "default") if rt.namespaced else "default",
        },
        "involvedObject": ref,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": host or "",
    }


class EventRecorder:
    """Creates Events; a repeat of the same (object, reason, message) bumps ``count``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: dict[tuple[str, str, str, str], tuple[str, str]] = {}

    def record(
        self, involved: JSON, rt: ResourceType, reason: str, message: str, **kw: Any
    ) -> None:
        uid = involved["metadata"].get("uid", "")
        key = (uid, reason, message, kw.get("field_path") or "")
        known = self._seen.get(key)
        if known is not None:
            existing = self.store.get(EVENTS, known[0], known[1])
            if existing is not None:
                new = copy.deepcopy(existing)
                new["count"] = int(new.get("count", 1)) + 1
                new["lastTimestamp"] = now_rfc3339()
                self.store.update(EVENTS, new)
                return
        event = event_object(involved, rt, reason, message, **kw)
        created = self.store.create(EVENTS, event)
        self._seen[key] = (created["metadata"]["namespace"], created["metadata"]["name"])
