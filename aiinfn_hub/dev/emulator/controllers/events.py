"""core/v1 Events as client-go's event recorder writes them, with its aggregation of repeats.

KubeSpawner shows these on the spawn progress page (its reflector lists
``fieldSelector=involvedObject.kind=Pod``), so they carry every field kubernetes_asyncio's
``CoreV1Event`` model needs: ``eventTime`` is present (null) next to the first/last timestamps.

A repeat of an event (same source, object, type, reason and message) bumps ``count`` and
``lastTimestamp`` of the stored one instead of creating another, as the real recorder's
correlator does; that keeps a pod that stays unschedulable from flooding the event list.
"""

from __future__ import annotations

import collections
import copy
import logging
import time
from typing import Any

from ..namespaces import is_terminating
from ..resources import EVENTS
from ..store import Store, now_rfc3339

log = logging.getLogger(__name__)
JSON = dict[str, Any]
_AGGREGATION_MEMORY = 4096


def involved_reference(obj: JSON, field_path: str | None = None) -> JSON:
    """The ``ObjectReference`` an event points at (as taken when the event is recorded)."""
    meta = obj["metadata"]
    ref: JSON = {
        "kind": obj.get("kind", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return ref


def build_event(
    involved: JSON,
    *,
    reason: str,
    message: str,
    component: str,
    event_type: str = "Normal",
    host: str | None = None,
    field_path: str | None = None,
    instance: str | None = None,
    action: str | None = None,
    related: JSON | None = None,
) -> JSON:
    """A new Event object; named ``<involved name>.<nanoseconds in hex>`` like the recorder.

    ``action`` and ``related`` (another object, e.g. the preemptor of a ``Preempted`` pod) are
    what the events.k8s.io recorder of kube-scheduler adds.
    """
    ref = involved_reference(involved, field_path)
    now = now_rfc3339()
    source: JSON = {"component": component}
    if host:
        source["host"] = host
    event: JSON = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{ref['name']}.{time.time_ns():x}",
            "namespace": ref.get("namespace") or "default",
        },
        "involvedObject": ref,
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": instance if instance is not None else (host or ""),
    }
    if action:
        event["action"] = action
    if related is not None:
        event["related"] = involved_reference(related)
    return event


class EventRecorder:
    """Writes Events to the store on behalf of the controllers (never from a store listener)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # aggregation key -> (namespace, name) of the stored event, most recent last
        self._recent: collections.OrderedDict[tuple[str, ...], tuple[str, str]] = (
            collections.OrderedDict()
        )

    def record(
        self,
        involved: JSON,
        reason: str,
        message: str,
        *,
        component: str,
        event_type: str = "Normal",
        host: str | None = None,
        field_path: str | None = None,
        instance: str | None = None,
        action: str | None = None,
        related: JSON | None = None,
    ) -> JSON | None:
        """Record one occurrence; returns the stored Event (new or with a higher count).

        None when the API server would refuse it: a new event in a namespace being deleted
        (NamespaceLifecycle's 403), which client-go's recorder drops, as here, without retrying.
        """
        meta = involved["metadata"]
        key = (
            component,
            host or "",
            involved.get("kind", ""),
            meta.get("namespace", ""),
            meta["name"],
            meta.get("uid", ""),
            field_path or "",
            event_type,
            reason,
            message,
        )
        known = self._recent.get(key)
        if known is not None:
            existing = self._store.get(EVENTS, *known)
            if existing is not None:
                repeated = copy.deepcopy(existing)
                repeated["count"] = int(existing.get("count") or 1) + 1
                repeated["lastTimestamp"] = now_rfc3339()
                self._recent.move_to_end(key)
                return self._store.update(EVENTS, repeated)
        namespace = meta.get("namespace") or "default"
        if is_terminating(self._store, namespace):
            log.debug(
                "event %s on %s dropped: namespace %s is terminating",
                reason,
                meta["name"],
                namespace,
            )
            return None
        event = build_event(
            involved,
            reason=reason,
            message=message,
            component=component,
            event_type=event_type,
            host=host,
            field_path=field_path,
            instance=instance,
            action=action,
            related=related,
        )
        stored = self._store.create(EVENTS, event)
        self._recent[key] = (stored["metadata"]["namespace"], stored["metadata"]["name"])
        if len(self._recent) > _AGGREGATION_MEMORY:
            self._recent.popitem(last=False)
        return stored
