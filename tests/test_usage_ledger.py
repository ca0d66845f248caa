"""The incremental usage ledger: after any events, the same counts as a full recount.

The events go through the real pod informer (``Informer._apply`` for watch events, ``_list``
over a paging list answer for relists) into a real ``LiveInventory``; only the HTTP answer of
the list is made up here. The recount is ``node_usage`` over the whole pods (not the cache's
lean copies), so the test also shows that trimming keeps everything the counting reads.
"""

from __future__ import annotations

import asyncio
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes_asyncio import client

from aiinfn_hub.config import load_platform_config
from aiinfn_hub.dev.emulator.cluster import initial_objects, load_cluster_file
from aiinfn_hub.inventory.availability import Usage, accelerator_availability, node_usage
from aiinfn_hub.inventory.ledger import UsageLedger, pod_contribution
from aiinfn_hub.inventory.live import LiveInventory
from aiinfn_hub.kube.informer import ClusterView, Informer
from aiinfn_hub.kube.lean import lean_pod

JSON = dict[str, Any]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
THRESHOLDS = (None, -100, 0, 1, 1000)
NODES = ("server-1", "server-2", "server-3")


def normalized(usage: Usage) -> tuple[JSON, JSON]:
    """Usage with zero amounts left out: a resource absent and a resource at 0 are one."""

    def clean(per_node: dict[str, dict[str, Fraction]]) -> JSON:
        out = {n: {r: v for r, v in res.items() if v} for n, res in per_node.items()}
        return {n: res for n, res in out.items() if res}

    return clean(usage.held), clean(usage.preemptible)


# -- pods ----------------------------------------------------------------------------------------

quantities = st.sampled_from(["0", "1", "2", "3", "500m", "1500m", "1Gi", "512Mi"])
resource_names = st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "nvidia.com/mig-1g.10gb"])
resource_lists = st.dictionaries(resource_names, quantities, max_size=3)
containers = st.fixed_dictionaries(
    {"name": st.sampled_from(["main", "side"]), "image": st.just("x:1")},
    optional={
        "resources": st.fixed_dictionaries(
            {}, optional={"requests": resource_lists, "limits": resource_lists}
        ),
        "restartPolicy": st.just("Always"),
        "env": st.just([{"name": "TOKEN", "value": "s3cr3t"}]),
        "command": st.just(["train", "--fast"]),
    },
)


@st.composite
def pods(draw: st.DrawFn, name: str, namespace: str) -> JSON:
    meta: JSON = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "labels": {"app": draw(st.sampled_from(["job", "notebook"]))},
        "annotations": {"note": "private"},
    }
    if draw(st.booleans()) and draw(st.booleans()):
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: JSON = {"containers": draw(st.lists(containers, min_size=1, max_size=2))}
    if draw(st.booleans()):
        spec["initContainers"] = draw(st.lists(containers, min_size=1, max_size=2))
    node = draw(st.sampled_from((None, *NODES)))
    if node:
        spec["nodeName"] = node
    priority = draw(st.sampled_from((None, -100, 0, 1000)))
    if priority is not None:
        spec["priority"] = priority
    if draw(st.booleans()) and draw(st.booleans()):
        spec["overhead"] = {"cpu": "250m"}
    phase = draw(st.sampled_from(["Pending", "Running", "Running", "Succeeded", "Failed"]))
    return {"metadata": meta, "spec": spec, "status": {"phase": phase, "podIP": "10.0.0.1"}}


KEYS = [(n, ns) for ns in ("hub", "jobs") for n in ("a", "b", "c", "d")]
keys = st.sampled_from(KEYS)


@st.composite
def events(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["put", "put", "put", "delete", "relist"]))
    if kind == "put":
        name, namespace = draw(keys)
        return kind, draw(pods(name, namespace))
    if kind == "delete":
        return kind, draw(keys)
    chosen = draw(st.lists(keys, unique=True, max_size=len(KEYS)))
    return kind, [draw(pods(n, ns)) for n, ns in chosen]


# -- the informer, fed by hand -------------------------------------------------------------------


class ListAnswer:
    """The raw answer of a list call (what ``_preload_content=False`` returns)."""

    def __init__(self, body: JSON) -> None:
        self.status = 200
        self._body = json.dumps(body).encode()

    async def read(self) -> bytes:
        return self._body


class PagingLister:
    """A list endpoint serving ``items`` in pages of ``limit`` with continue tokens."""

    def __init__(self) -> None:
        self.items: list[JSON] = []
        self.rv = 1
        self.calls = 0

    async def __call__(self, **kw: Any) -> ListAnswer:
        self.calls += 1
        start = int(kw.get("_continue") or 0)
        limit = int(kw.get("limit") or len(self.items) or 1)
        page = self.items[start : start + limit]
        meta: JSON = {"resourceVersion": str(self.rv)}
        if start + limit < len(self.items):
            meta["continue"] = str(start + limit)
        return ListAnswer({"metadata": meta, "items": page})


async def _replay(history: list[tuple[str, Any]], page_size: int) -> None:
    api = client.ApiClient(configuration=client.Configuration(host="http://127.0.0.1:9"))
    try:
        lister = PagingLister()
        view = ClusterView(api)
        view.pods = Informer("pods", lister, keep=lean_pod, page_size=page_size)
        live = LiveInventory(view)  # subscribes before the first list, as the hub does
        await view.pods._list()
        truth: dict[str, JSON] = {}  # the whole pods the cluster has now
        rv = 1
        for kind, arg in history:
            rv += 1
            if kind == "put":
                key = f"{arg['metadata']['namespace']}/{arg['metadata']['name']}"
                pod = json.loads(json.dumps(arg))
                pod["metadata"]["resourceVersion"] = str(rv)
                event = "MODIFIED" if key in truth else "ADDED"
                truth[key] = arg
                view.pods._apply({"type": event, "object": pod})
            elif kind == "delete":
                name, namespace = arg
                key = f"{namespace}/{name}"
                gone = truth.pop(key, None)
                obj = gone or {"metadata": {"name": name, "namespace": namespace}}
                view.pods._apply({"type": "DELETED", "object": obj})
            else:
                lister.items, lister.rv = list(arg), rv
                truth = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in arg}
                await view.pods._list()
            assert set(view.pods.cache) == set(truth)
            for threshold in THRESHOLDS:
                expected = normalized(node_usage(truth.values(), threshold))
                assert normalized(live.usage(threshold)) == expected, (kind, threshold)
                assert normalized(node_usage(view.pods.objects(), threshold)) == expected
    finally:
        await api.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(events(), max_size=25), page_size=st.integers(1, 4))
def test_incremental_counts_equal_a_full_recount_after_any_events(
    history: list[tuple[str, Any]], page_size: int
) -> None:
    asyncio.run(_replay(history, page_size))


# -- the ledger alone ----------------------------------------------------------------------------


def _gpu_pod(node: str | None, gpus: str, *, priority: int = 0, phase: str = "Running") -> JSON:
    spec: JSON = {
        "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": gpus}}}],
        "priority": priority,
    }
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": "p", "namespace": "x"}, "spec": spec, "status": {"phase": phase}}


def test_a_pod_counts_from_binding_to_its_end() -> None:
    ledger = UsageLedger()
    assert ledger.update("x/p", _gpu_pod(None, "2")) is False  # pending, unbound: nothing held
    assert ledger.update("x/p", _gpu_pod("server-1", "2", priority=-100)) is True  # bound
    usage = ledger.usage(0)
    assert usage.held["server-1"]["nvidia.com/gpu"] == 2
    assert usage.preemptible["server-1"]["nvidia.com/gpu"] == 2
    assert ledger.usage(-100).preemptible == {}  # not below its own priority
    assert ledger.update("x/p", _gpu_pod("server-1", "2", priority=-100)) is False  # same
    assert ledger.update("x/p", _gpu_pod("server-1", "2", priority=-100, phase="Succeeded"))
    assert ledger.usage(0) == Usage({}, {}) and len(ledger) == 0
    ledger.update("x/p", _gpu_pod("server-2", "1"))
    assert ledger.update("x/p", None)  # deleted
    assert ledger.usage(0) == Usage({}, {})


def test_any_threshold_is_answered_from_the_sums_per_priority() -> None:
    ledger = UsageLedger()
    for i, priority in enumerate((-100, -100, 0, 1000)):
        ledger.update(f"x/p{i}", _gpu_pod("server-3", "1", priority=priority))
    gpus = {
        t: ledger.usage(t).preemptible.get("server-3", {}).get("nvidia.com/gpu") for t in THRESHOLDS
    }
    assert gpus == {None: None, -100: None, 0: 2, 1: 3, 1000: 3}
    assert ledger.usage(1000).held["server-3"]["nvidia.com/gpu"] == 4


def test_the_contribution_is_what_node_usage_counts() -> None:
    pod = _gpu_pod("server-1", "1", priority=5)
    part = pod_contribution(pod)
    assert part is not None and (part.node, part.priority) == ("server-1", 5)
    assert node_usage([pod]).held["server-1"] == part.requests
    deleting = _gpu_pod("server-1", "1")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_contribution(deleting) is None and pod_contribution(None) is None


def test_live_answers_equal_the_pure_function_over_the_cache() -> None:
    """The split of the answer (what nodes offer, apart from what pods hold) changes nothing."""
    platform = load_platform_config(EXAMPLES / "platform.yaml")
    nodes = [
        o
        for o in initial_objects(load_cluster_file(EXAMPLES / "cluster.yaml"))
        if o["kind"] == "Node"
    ]
    pods = [
        _gpu_pod("server-1", "2"),
        _gpu_pod("server-3", "1", priority=-100),
        _gpu_pod("server-3", "1", priority=1000),
    ]
    for i, pod in enumerate(pods):
        pod["metadata"]["name"] = f"p{i}"

    async def scenario() -> None:
        api = client.ApiClient(configuration=client.Configuration(host="http://127.0.0.1:9"))
        try:
            view = ClusterView(api)
            node_lister, pod_lister = PagingLister(), PagingLister()
            node_lister.items, pod_lister.items = nodes, pods
            view.nodes = Informer("nodes", node_lister, keep=view.nodes._keep)
            view.pods = Informer("pods", pod_lister, keep=lean_pod)
            await view.nodes._list()
            await view.pods._list()
            live = LiveInventory(view)  # subscribes after the list: starts from the cache
            for projects in (None, {"ml-infn"}, {"cms"}):
                expected = accelerator_availability(
                    platform, nodes, node_usage(pods, 1000), projects=projects
                )
                assert live.availability(platform, projects, notebook_priority=1000) == expected
            a100 = next(
                m
                for m in live.availability(platform, None, notebook_priority=1000)
                if m.name == "a100"
            )
            assert (a100.free, a100.batch) == (1, 1)
        finally:
            await api.close()

    asyncio.run(scenario())
