"""The informer reads lists in pages, tells its listeners each change, and ignores changes of
what it does not keep (no HTTP: the list answers are made up here)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from aiinfn_hub.kube.informer import Informer, ResourceExpired

JSON = dict[str, Any]


class Answer:
    def __init__(self, body: JSON, status: int = 200) -> None:
        self.status, self.reason = status, "Gone"
        self._body = json.dumps(body).encode()

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        pass


def _pod(name: str, phase: str = "Running", ip: str = "10.0.0.1") -> JSON:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"},
        "spec": {"containers": [{"name": "c", "env": [{"name": "K", "value": "v"}]}]},
        "status": {"phase": phase, "podIP": ip},
    }


def _keep(obj: JSON) -> JSON:
    return {"metadata": {"name": obj["metadata"]["name"], "namespace": "ns"}} | {
        "status": {"phase": obj["status"]["phase"]}
    }


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def relisted(self, cache: Mapping[str, JSON]) -> None:
        self.seen.append(("relisted", sorted(cache)))

    def changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        self.seen.append(("changed", key, old and old["status"], new and new["status"]))


async def test_a_list_is_read_in_pages_and_replaces_the_cache_at_once() -> None:
    items = [_pod(f"p{i}") for i in range(5)]
    calls: list[JSON] = []

    async def lister(**kw: Any) -> Answer:
        calls.append(kw)
        start = int(kw.get("_continue") or 0)
        meta: JSON = {"resourceVersion": "42"}
        if start + kw["limit"] < len(items):
            meta["continue"] = str(start + kw["limit"])
        return Answer({"metadata": meta, "items": items[start : start + kw["limit"]]})

    informer = Informer("pods", lister, keep=_keep, page_size=2)
    recorder = Recorder()
    informer.subscribe(recorder)
    await informer._list()
    assert [c.get("_continue") for c in calls] == [None, "2", "4"]
    assert all(c["limit"] == 2 and c["label_selector"] == "" for c in calls)
    assert sorted(informer.cache) == [f"ns/p{i}" for i in range(5)]
    assert informer.resource_version == "42" and informer.ready.is_set()
    # the listener saw the empty cache when it subscribed, then the whole list once
    assert recorder.seen == [("relisted", []), ("relisted", sorted(informer.cache))]


async def test_an_expired_continue_token_is_a_410() -> None:
    async def lister(**kw: Any) -> Answer:
        if kw.get("_continue"):
            return Answer({"kind": "Status", "code": 410}, status=410)
        return Answer({"metadata": {"continue": "x"}, "items": [_pod("a")]})

    informer = Informer("pods", lister, keep=_keep)
    with pytest.raises(ResourceExpired):
        await informer._list()
    assert informer.cache == {} and not informer.ready.is_set()  # nothing half-listed


async def test_listeners_follow_each_change_and_changes_of_dropped_fields_are_none() -> None:
    async def lister(**kw: Any) -> Answer:
        return Answer({"metadata": {"resourceVersion": "1"}, "items": [_pod("a")]})

    informer = Informer("pods", lister, keep=_keep)
    await informer._list()
    recorder = Recorder()
    informer.subscribe(recorder)
    version = informer.version
    informer._apply({"type": "MODIFIED", "object": _pod("a", ip="10.0.0.2")})  # only the IP
    assert informer.version == version and recorder.seen == [("relisted", ["ns/a"])]
    informer._apply({"type": "MODIFIED", "object": _pod("a", phase="Succeeded")})
    informer._apply({"type": "ADDED", "object": _pod("b")})
    informer._apply({"type": "DELETED", "object": _pod("a", phase="Succeeded")})
    assert informer.version == version + 3
    assert recorder.seen[1:] == [
        ("changed", "ns/a", {"phase": "Running"}, {"phase": "Succeeded"}),
        ("changed", "ns/b", None, {"phase": "Running"}),
        ("changed", "ns/a", {"phase": "Succeeded"}, None),
    ]
    informer.unsubscribe(recorder)
    informer._apply({"type": "DELETED", "object": _pod("b")})
    assert len(recorder.seen) == 4 and set(informer.cache) == set()


async def test_a_failing_listener_stops_neither_the_cache_nor_the_others() -> None:
    async def lister(**kw: Any) -> Answer:
        return Answer({"metadata": {"resourceVersion": "1"}, "items": []})

    class Broken(Recorder):
        def changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
            raise ValueError("a bug of the listener")

    informer = Informer("pods", lister, keep=_keep)
    broken, recorder = Broken(), Recorder()
    informer.subscribe(broken)
    informer.subscribe(recorder)
    informer._apply({"type": "ADDED", "object": _pod("a")})
    assert set(informer.cache) == {"ns/a"}
    assert recorder.seen[-1] == ("changed", "ns/a", None, {"phase": "Running"})
