"""List responses: selectors, ``resourceVersion``/``resourceVersionMatch`` and paging.

A continue token carries the list's resourceVersion and the last key served, so the pages of a
chunked list report one resourceVersion like the real server's consistent snapshot (the objects
themselves are read live, which the API documentation allows for the pages after the first
once the snapshot is compacted; our store keeps no snapshots).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..store import Store
from .paths import Target
from .selectors import Requirement, labels_match, parse_field_selector, parse_label_selector

JSON = dict[str, Any]
Query = Callable[[str], str | None]


@dataclass(frozen=True)
class Selection:
    """The label and field selectors of a request, as one predicate."""

    labels: list[Requirement]
    fields: Callable[[JSON], bool]

    def __call__(self, obj: JSON | None) -> bool:
        return obj is not None and labels_match(self.labels, obj) and self.fields(obj)


def selection(target: Target, query: Query) -> Selection:
    """Parse ``labelSelector`` and ``fieldSelector`` (400 on bad syntax or unknown fields)."""
    return Selection(
        parse_label_selector(query("labelSelector")),
        parse_field_selector(query("fieldSelector"), target.rt),
    )


def sort_key(obj: JSON) -> tuple[str, str]:
    """The order of the store and of continue tokens: namespace, then name."""
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def list_objects(store: Store, target: Target, query: Query) -> tuple[list[JSON], JSON]:
    """The selected objects of one page and the list metadata to answer with."""
    select = selection(target, query)
    _check_resource_version(store, query("resourceVersion"), query("resourceVersionMatch"))
    items = [o for o in store.list(target.rt, target.namespace) if select(o)]
    meta: JSON = {"resourceVersion": str(store.resource_version)}
    token = query("continue")
    if token:
        start, list_rv = _decode_token(token)
        meta["resourceVersion"] = list_rv
        items = [o for o in items if sort_key(o) > start]
    limit = _limit(query("limit"))
    if limit and len(items) > limit:
        remaining = len(items) - limit
        items = items[:limit]
        meta["continue"] = _encode_token(sort_key(items[-1]), meta["resourceVersion"])
        meta["remainingItemCount"] = remaining
    return items, meta


def _check_resource_version(store: Store, rv: str | None, match: str | None) -> None:
    if match and match not in ("NotOlderThan", "Exact"):
        raise ApiError(
            422,
            "Invalid",
            f'resourceVersionMatch: Unsupported value: "{match}": supported values: '
            '"Exact", "NotOlderThan"',
        )
    if match and not rv:
        raise ApiError(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
            "resourceVersion is provided",
        )
    if rv and rv != "0":
        try:
            wanted = int(rv)
        except ValueError as exc:
            raise ApiError.bad_request(f"invalid resource version: {rv}") from exc
        if match == "Exact" and wanted != store.resource_version:
            # only the current state is kept: older exact versions are compacted away
            raise ApiError.gone(wanted, store.resource_version)
        if wanted > store.resource_version:
            raise ApiError(
                504,
                "Timeout",
                f"Too large resource version: {wanted}, current: {store.resource_version}",
                details={
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            )
    elif match == "Exact":
        raise ApiError(
            422,
            "Invalid",
            'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for '
            'resourceVersion "0"',
        )


def _limit(text: str | None) -> int:
    if not text:
        return 0
    try:
        return max(int(text), 0)
    except ValueError as exc:
        raise ApiError.bad_request(f"invalid limit: {text}") from exc


def _encode_token(last: tuple[str, str], rv: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": "/".join(last) + "\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[tuple[str, str], str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
        namespace, _, name = str(state["start"]).rstrip("\x00").partition("/")
        return (namespace, name), str(int(state["rv"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ApiError.bad_request(
            "continue key is not valid: incorrect encoded start "
            "resourceVersion (version meta.k8s.io/v1)"
        ) from exc
