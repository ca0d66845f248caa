"""The record of a job's preemptions that the service keeps on the Job itself (pure).

A pod a notebook preempted is deleted: on a real cluster it is gone within seconds, and with it
what the job's page said about it. So the service writes each preemption, as soon as it sees
one (``recorder``), into the Job's annotation ``aiinfn.infn.it/preemptions``::

    {"preemptions": [{"at": "2025-03-07T14:02:31Z", "node": "gpu-node-1", "index": null,
                      "lostSeconds": 751, "pod": "<the preempted pod's uid>"}],
     "totals": {"count": 1, "lostSeconds": 751}}

``preemptions`` holds the ``MAX_RECORDS`` most recent ones, oldest first; ``totals`` counts all
of them, so the job's note stays right beyond that. Adding is idempotent: a pod (its uid) is
counted once, whichever replica of the service sees it first and however often; a pod that
succeeded within its grace period after all is taken out again (it lost nothing). A record
that does not parse reads as empty (and is written anew): it only ever informs, never decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..kubemodel.times import api_time
from ..platform import vocabulary as v

JSON = dict[str, Any]
MAX_RECORDS = 20  # the most recent preemptions kept one by one (the API lists as many)
MAX_NODE_NAME = 253  # a node name is a DNS subdomain: longer text is not one
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def entry(
    at: datetime, node: str | None, index: int | None, lost_seconds: int, pod: str | None
) -> JSON:
    """One preemption as the record holds it (``at`` in UTC, to the second)."""
    return {
        "at": at.astimezone(UTC).strftime(TIME_FORMAT),
        "node": node[:MAX_NODE_NAME] if isinstance(node, str) else None,
        "index": index,
        "lostSeconds": max(0, int(lost_seconds)),
        "pod": pod or None,
    }


def _entry_key(item: JSON) -> tuple[str, str | None, int | None]:
    return item["at"], item["node"], item["index"]


@dataclass(frozen=True)
class PreemptionRecord:
    """The most recent preemptions (``entries``, oldest first) and the totals of all."""

    entries: tuple[JSON, ...] = ()
    count: int = 0
    lost_seconds: int = 0

    @property
    def dropped(self) -> bool:
        """Whether older preemptions were counted but are no longer listed."""
        return self.count > len(self.entries)

    def counted(self, item: JSON) -> bool:
        """Whether ``item`` is already in the record: the same pod (uid), or, for an item
        without one, the same time, node and index. An item older than every listed one is
        taken as counted when older ones were dropped: it was recorded, then pushed out."""
        uid = item.get("pod")
        if uid:
            if any(e["pod"] == uid for e in self.entries):
                return True
        elif any(_entry_key(e) == _entry_key(item) for e in self.entries):
            return True
        return bool(self.dropped and self.entries and item["at"] < self.entries[0]["at"])

    def add(self, item: JSON) -> PreemptionRecord | None:
        """The record with ``item`` (made by :func:`entry`) counted, or None when it already
        is; only the ``MAX_RECORDS`` most recent stay listed."""
        if self.counted(item):
            return None
        entries = sorted((*self.entries, item), key=_order)[-MAX_RECORDS:]
        return PreemptionRecord(
            tuple(entries), self.count + 1, self.lost_seconds + item["lostSeconds"]
        )

    def remove(self, pod: str) -> PreemptionRecord | None:
        """The record without the listed preemption of ``pod`` (uid): a pod that succeeded
        within its grace period lost nothing. None when it is not listed."""
        gone = [e for e in self.entries if e["pod"] == pod]
        if not pod or not gone:
            return None
        return PreemptionRecord(
            tuple(e for e in self.entries if e["pod"] != pod),
            max(0, self.count - len(gone)),
            max(0, self.lost_seconds - sum(e["lostSeconds"] for e in gone)),
        )

    def to_json(self) -> str:
        """The annotation's text."""
        return json.dumps(
            {
                "preemptions": list(self.entries),
                "totals": {"count": self.count, "lostSeconds": self.lost_seconds},
            },
            separators=(",", ":"),
        )


def _order(item: JSON) -> tuple[str, str]:
    return item["at"], item["pod"] or ""


def _int(value: Any) -> int | None:
    """A non-negative integer of the JSON (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _parsed_entry(item: Any) -> JSON | None:
    if not isinstance(item, dict):
        return None
    at = api_time(item.get("at"))
    lost = _int(item.get("lostSeconds"))
    index = item.get("index")
    if at is None or lost is None or (index is not None and _int(index) is None):
        return None
    node, pod = item.get("node"), item.get("pod")
    return entry(
        at,
        node if isinstance(node, str) else None,
        index,
        lost,
        pod if isinstance(pod, str) else None,
    )


def parse(text: str | None) -> PreemptionRecord:
    """The record of the annotation's text; empty when absent or not a record. Entries that
    do not parse are left out; the totals never count fewer than the entries listed."""
    if not text:
        return PreemptionRecord()
    try:
        data = json.loads(text)
    except ValueError:
        return PreemptionRecord()
    if not isinstance(data, dict):
        return PreemptionRecord()
    raw = data.get("preemptions")
    found = [e for e in map(_parsed_entry, raw if isinstance(raw, list) else []) if e]
    entries: list[JSON] = []
    for item in sorted(found, key=_order):  # a pod listed twice counts once
        if not any(item["pod"] and e["pod"] == item["pod"] for e in entries):
            entries.append(item)
    entries = entries[-MAX_RECORDS:]
    totals = data.get("totals")
    totals = totals if isinstance(totals, dict) else {}
    count = _int(totals.get("count")) or 0
    lost = _int(totals.get("lostSeconds")) or 0
    return PreemptionRecord(
        tuple(entries),
        max(count, len(entries)),
        max(lost, sum(e["lostSeconds"] for e in entries)),
    )


def read(job: JSON) -> PreemptionRecord:
    """The record kept on the Job (``aiinfn.infn.it/preemptions``)."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(v.PREEMPTIONS)
    return parse(text if isinstance(text, str) else None)
