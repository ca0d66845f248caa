"""The store behaves like etcd behind kube-apiserver: one resourceVersion, history, conflicts."""

from __future__ import annotations

import copy

import pytest

from aiinfn_hub.dev.emulator.errors import ApiError
from aiinfn_hub.dev.emulator.resources import CONFIGMAPS, JOBS, NODES
from aiinfn_hub.dev.emulator.store import Store, WatchEvent


def _cm(name: str, ns: str = "default", **data: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": ns}, "data": dict(data)}


def test_create_fills_metadata_and_one_cluster_wide_resource_version() -> None:
    store = Store()
    a = store.create(CONFIGMAPS, _cm("a"))
    b = store.create(NODES, {"metadata": {"name": "n1", "namespace": "ignored"}})
    assert int(b["metadata"]["resourceVersion"]) == int(a["metadata"]["resourceVersion"]) + 1
    assert store.resource_version == int(b["metadata"]["resourceVersion"])
    assert a["kind"] == "ConfigMap" and a["apiVersion"] == "v1"
    assert len(a["metadata"]["uid"]) == 36 and a["metadata"]["creationTimestamp"].endswith("Z")
    assert "generation" not in a["metadata"]  # core kinds without spec keep no generation
    assert "namespace" not in b["metadata"]  # cluster-scoped


def test_already_exists_and_not_found_are_worded_like_the_api_server() -> None:
    store = Store()
    store.create(CONFIGMAPS, _cm("a"))
    with pytest.raises(ApiError) as exc:
        store.create(CONFIGMAPS, _cm("a"))
    assert exc.value.code == 409 and exc.value.reason == "AlreadyExists"
    assert exc.value.message == 'configmaps "a" already exists'
    with pytest.raises(ApiError) as exc:
        store.delete(JOBS, "default", "nope")
    assert exc.value.code == 404 and exc.value.message == 'jobs.batch "nope" not found'
    assert exc.value.status()["details"] == {"name": "nope", "kind": "jobs", "group": "batch"}


def test_generate_name() -> None:
    store = Store()
    obj = store.create(CONFIGMAPS, {"metadata": {"generateName": "job-", "namespace": "x"}})
    name = obj["metadata"]["name"]
    assert name.startswith("job-") and len(name) == len("job-") + 5


def test_update_conflict_generation_and_no_op() -> None:
    store = Store()
    job = store.create(JOBS, {"metadata": {"name": "j", "namespace": "d"}, "spec": {"x": 1}})
    assert job["metadata"]["generation"] == 1
    stale = job["metadata"]["resourceVersion"]

    changed = copy.deepcopy(job)
    changed["spec"]["x"] = 2
    updated = store.update(JOBS, changed, expected_rv=stale)
    assert updated["metadata"]["generation"] == 2
    assert updated["metadata"]["uid"] == job["metadata"]["uid"]

    status_only = copy.deepcopy(updated)
    status_only["status"] = {"active": 1}
    after_status = store.update(JOBS, status_only)
    assert after_status["metadata"]["generation"] == 2  # status is not spec

    rv = store.resource_version
    assert store.update(JOBS, copy.deepcopy(after_status)) is after_status  # no-op write
    assert store.resource_version == rv

    again = copy.deepcopy(after_status)
    again["spec"]["x"] = 3
    with pytest.raises(ApiError) as exc:
        store.update(JOBS, again, expected_rv=stale)
    assert exc.value.code == 409 and exc.value.reason == "Conflict"
    assert "the object has been modified" in exc.value.message


def test_watch_replays_history_after_a_version_and_410_once_compacted() -> None:
    store = Store(history_size=3)
    first = store.create(CONFIGMAPS, _cm("a"))
    since = int(first["metadata"]["resourceVersion"])
    store.create(CONFIGMAPS, _cm("b"))
    store.create(CONFIGMAPS, _cm("c", ns="other"))
    watcher = store.watch(CONFIGMAPS, "default", since)
    queued = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
    assert [e.obj["metadata"]["name"] for e in queued if e] == ["b"]  # newer, same namespace

    store.delete(CONFIGMAPS, "default", "a")
    event = watcher.queue.get_nowait()
    assert event is not None and event.type == "DELETED"
    assert int(event.obj["metadata"]["resourceVersion"]) == store.resource_version

    store.create(CONFIGMAPS, _cm("d"))  # pushes older events out of a 3-event history
    with pytest.raises(ApiError) as exc:
        store.watch(CONFIGMAPS, None, since)
    assert exc.value.code == 410 and exc.value.reason == "Expired"
    store.unwatch(watcher)
    rest = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
    assert rest[0] is not None and rest[0].obj["metadata"]["name"] == "d"
    assert rest[-1] is None  # closing wakes the reader


def test_listeners_see_every_change_with_the_old_object() -> None:
    store = Store()
    seen: list[WatchEvent] = []
    store.add_listener(seen.append)
    obj = store.create(CONFIGMAPS, _cm("a", k="1"))
    new = copy.deepcopy(obj)
    new["data"]["k"] = "2"
    store.update(CONFIGMAPS, new)
    store.delete(CONFIGMAPS, "default", "a")
    assert [e.type for e in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert seen[1].old is not None and seen[1].old["data"]["k"] == "1"
    assert [e.rv for e in seen] == sorted(e.rv for e in seen)
