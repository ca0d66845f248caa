"""Benchmark: what AIInfnSpawner's hooks add to a spawn, against upstream KubeSpawner.

    .venv/bin/python bench/spawn.py [--servers 100] [--profile]

One JupyterHub app (``jupyterhub.tests.mocking.MockHub``, as the integration tests use it) and
one emulated cluster (``examples/cluster.yaml``, simulated containers: the single-user
server's own start time is not measured). Each server is started and stopped through its
spawner, as the hub does: ``spawner.start()`` until the pod runs, then ``spawner.stop()``
until it is gone, one server at a time, by turns with three kinds of spawner (each goes first
in turn):

- ``upstream``: KubeSpawner as configured (a pod of one container);
- ``same-pod``: KubeSpawner given AIInfnSpawner's other containers (the storage-init init
  container and the bucket sidecar, same images and commands, without their volumes), so
  its pod goes through the same steps in the emulator: what is left between it and ours is
  what the hooks add;
- ``aiinfn``: AIInfnSpawner as configured in production, with ``examples/platform.yaml``, the
  notebook PriorityClass and an authenticator that gives a storage token (so the token
  Secret is written at start and deleted at stop); its options are the REST API's empty body
  (the defaults: CPU only). Each user is new, so each start also allocates the user's number
  (one insert in the hub database; a returning user's start reads it).

kubespawner waits for the pod by polling its reflector after random sleeps (JupyterHub's
``exponential_backoff``: up to 0.2 s, then doubling): a pod running a few ms later can wait a
whole sleep more. The bench seeds that jitter alike for every kind of each server, and
compares means over many servers; the figures still move by tens of percent between runs.
The first start of each kind starts the shared caches (kubespawner's pod and event
reflectors, our node and pod informers) and is not counted.

Kubernetes API calls are counted at the client (``kubernetes_asyncio``'s REST client): each
request made from a spawn's own tasks, by verb, resource and the hook that made it. The
shared caches' lists and watches run in tasks of their own (the first start's) and are
printed apart, for the whole run. The bucket sidecar's report is not awaited
(``bucket_mount_timeout = 0``, as in the integration tests: simulated containers write no
mount report); on a cluster each start reads the sidecar's log about once a second until
rclone reported every bucket.

Printed: start and stop times (p50, p95), start + stop (p50, mean) and API calls per spawn of
each kind; each start in three parts (until the pod is sent: the hooks; until the cluster has
it running: the pod's own start; until kubespawner notices: its polling); the time spent in
each of AIInfnSpawner's hooks; ``hooks-ms-per-spawn``, their own time added up (API calls
included) over same-pod's manifest; ``extra-api-calls-per-spawn`` over upstream; the overhead
over upstream's one-container pod. ``--profile`` prints where AIInfnSpawner's starts spend
their time (cProfile, cumulative). The last line is ``spawn-overhead: N.NNx``: AIInfnSpawner's
mean start + stop time over same-pod's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import copy
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiinfn_hub.dev.emulator.cluster import load_cluster_file
from aiinfn_hub.dev.emulator.runtime import Emulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMESPACE = "jupyterhub"
# upstream KubeSpawner as configured (its pod has one container), upstream with the same
# containers as AIInfnSpawner's pod (storage-init, bucket sidecar), and AIInfnSpawner
KINDS = ("upstream", "same-pod", "aiinfn")

# the calls of the spawn whose tasks are running (tasks copy the context they start in)
_spawn_calls: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar(
    "spawn_calls", default=None
)
_background: Counter[str] = Counter()
# when this spawn sent its pod, got it created, and its pod was first seen running
_marks: dict[str, float] = {}
# the hook whose code is running (API calls are counted under it), and seconds per hook
_hook: contextvars.ContextVar[str | None] = contextvars.ContextVar("hook", default=None)
_hook_seconds: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
# AIInfnSpawner's hooks (and the kubespawner methods it changes the work of), timed per spawn
HOOKS = (
    "load_user_options",
    "availability",
    "apply_storage",
    "write_token_secret",
    "get_pod_manifest",
    "report_storage",
    "delete_token_secret",
)
# the hooks that no other of HOOKS calls (get_pod_manifest is counted over upstream's)
TOP_LEVEL_HOOKS = (
    "load_user_options",
    "write_token_secret",
    "report_storage",
    "delete_token_secret",
)


def _call_name(method: str, url: str, query: Any) -> str:
    """``POST pods``, ``GET pods/log``, ``WATCH pods``: the verb and the resource asked for."""
    parts = urlsplit(url).path.strip("/").split("/")
    # /api/v1[/namespaces/ns]/plural[/name[/sub]] or /apis/group/version/...
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    resource = rest[0] if rest else "?"
    if len(rest) >= 3:
        resource += "/" + rest[2]
    watching = any(k == "watch" and str(v).lower() == "true" for k, v in query or [])
    return f"{'WATCH' if watching else method.upper()} {resource}"


def _count_api_calls() -> None:
    """Count every request of kubernetes_asyncio's REST client (kubespawner's and ours)."""
    from kubernetes_asyncio.client import rest

    original = rest.RESTClientObject.request

    async def counted(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        name = _call_name(method, url, kwargs.get("query_params"))
        calls = _spawn_calls.get()
        if calls is not None and name == "POST pods":
            _marks["post"] = time.perf_counter()
        hook = _hook.get()
        if calls is not None and hook is not None:
            calls[f"{hook}: {name}"] += 1
        else:
            (calls if calls is not None else _background)[name] += 1
        answer = await original(self, method, url, *args, **kwargs)
        if calls is not None and name == "POST pods":
            _marks["created"] = time.perf_counter()
        return answer

    rest.RESTClientObject.request = counted  # type: ignore[method-assign]


def _time_hooks() -> None:
    """Time each of ``HOOKS`` per kind of spawner and name the API calls made inside it."""
    from aiinfn_hub.spawner.spawner import AIInfnSpawner

    for name in HOOKS:
        owner = next(c for c in AIInfnSpawner.__mro__ if name in vars(c))
        original = vars(owner)[name]
        if asyncio.iscoroutinefunction(original):

            async def timed_async(
                self: Any, *a: Any, _f: Any = original, _n: str = name, **k: Any
            ) -> Any:
                token = _hook.set(_hook.get() or _n)
                t0 = time.perf_counter()
                try:
                    return await _f(self, *a, **k)
                finally:
                    _hook_seconds[_kind(self)][_n] += time.perf_counter() - t0
                    _hook.reset(token)

            setattr(owner, name, timed_async)
        else:

            def timed(self: Any, *a: Any, _f: Any = original, _n: str = name, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _f(self, *a, **k)
                finally:
                    _hook_seconds[_kind(self)][_n] += time.perf_counter() - t0

            setattr(owner, name, timed)

    def _kind(spawner: Any) -> str:
        return str(getattr(spawner, "bench_kind", "aiinfn"))


@contextmanager
def _counting(into: Counter[str]) -> Iterator[None]:
    token = _spawn_calls.set(into)
    try:
        yield
    finally:
        _spawn_calls.reset(token)


def _hub_config(tmp: Path) -> Any:
    from jupyterhub.tests.mocking import MockPAMAuthenticator
    from traitlets.config import Config

    from aiinfn_hub.spawner.spawner import AIInfnSpawner

    class StorageTokenAuthenticator(MockPAMAuthenticator):  # type: ignore[misc]
        """Gives a storage token, as IAMAuthenticator does from auth_state."""

        def storage_token(self, auth_state: dict[str, Any] | None) -> tuple[str, float]:
            return "bench-storage-token", time.time() + 3600

        async def refresh_user(self, user: Any, handler: Any = None) -> bool:
            return True

    return Config(
        {
            "JupyterHub": {
                "spawner_class": AIInfnSpawner,
                "authenticator_class": StorageTokenAuthenticator,
                "cookie_secret_file": str(tmp / "cookie_secret"),
                "db_url": f"sqlite:///{tmp / 'hub.sqlite'}",
            },
            "Application": {"log_level": "WARN"},
            "ConfigurableHTTPProxy": {
                "pid_file": str(tmp / "proxy.pid"),
                "command": ["configurable-http-proxy", "--log-level", "warn"],
            },
            # both kinds: the same namespace, command and timeouts
            "KubeSpawner": {
                "namespace": NAMESPACE,
                "cmd": ["jupyterhub-singleuser"],
                "start_timeout": 30,
                "http_timeout": 5,
            },
            "AIInfnSpawner": {
                "platform_config_file": str(EXAMPLES / "platform.yaml"),
                "notebook_priority_class": "notebook",
                "bucket_mount_timeout": 0,
            },
        }
    )


def _add_user(app: Any, name: str, group: str) -> Any:
    from jupyterhub import orm

    orm_user = orm.User(name=name)
    app.db.add(orm_user)
    found = orm.Group.find(app.db, group) or orm.Group(name=group)
    app.db.add(found)
    orm_user.groups.append(found)
    app.db.commit()
    return app.users[orm_user.id]


def _spawner(app: Any, kind: str, i: int, shape: dict[str, Any]) -> Any:
    """A new user's spawner of ``kind``; ``same-pod`` gets the containers of ``shape``."""
    from kubespawner import KubeSpawner

    user = _add_user(app, f"{kind}-{i:03d}", "ml-infn")
    if kind == "aiinfn":
        return user.spawners[""]
    spawner = user._new_spawner("", spawner_class=KubeSpawner)
    spawner.bench_kind = kind
    if kind == "same-pod":
        for trait, containers in shape.items():
            setattr(spawner, trait, containers)
    user.spawners[""] = spawner
    return spawner


def _containers_of(spawner: Any) -> dict[str, Any]:
    """AIInfnSpawner's init containers and sidecars, for an upstream spawner's pod: the same
    containers (images, commands), without the volumes they mount (a Secret, NFS, buckets)."""
    shape = {}
    for trait in ("init_containers", "extra_containers"):
        containers = copy.deepcopy(getattr(spawner, trait))
        for container in containers:
            container.pop("volumeMounts", None)
        shape[trait] = containers
    return shape


async def _running_seen(spawner: Any) -> None:
    """Note when the pod reflector first has the pod running (what kubespawner polls for)."""
    while True:
        reflector = getattr(spawner, "pod_reflector", None)
        pod = reflector.pods.get(f"{NAMESPACE}/{spawner.pod_name}") if reflector else None
        with contextlib.suppress(KeyError):  # a pending pod has no container statuses yet
            if pod is not None and spawner.is_pod_running(pod):
                _marks["running"] = time.perf_counter()
                return
        await asyncio.sleep(0.001)


def _phases() -> dict[str, float]:
    """A start in three parts: until the pod is sent (hooks), until the cluster has it running
    (the pod's own start: containers, init containers, status updates, the watch), and until
    kubespawner notices (its polling)."""
    m = _marks
    return {
        "to_post": m["post"] - m["t0"],
        "to_running": m["running"] - m["post"],
        "noticed": m["started"] - m["running"],
    }


def _same_jitter() -> random.Random:
    """Give kubespawner's waits (JupyterHub's ``exponential_backoff``: it polls the pod
    reflector after random sleeps) a generator of their own, seeded by the bench, so both
    kinds of spawner sleep the same way for the same server: the comparison is not drawn out
    of the jitter (hundreds of ms against the hooks' few)."""
    import jupyterhub.utils

    jitter = random.Random()
    jupyterhub.utils.random = jitter  # type: ignore[attr-defined]
    return jitter


async def _start_stop(
    spawner: Any, calls: Counter[str], jitter: random.Random, seed: int
) -> tuple[float, float]:
    """Start, then stop, one server; seconds of each. API calls are added to ``calls``."""
    _marks.clear()
    seen = asyncio.ensure_future(_running_seen(spawner))
    with _counting(calls):
        jitter.seed(seed)
        t0 = time.perf_counter()
        await spawner.start()
        t1 = time.perf_counter()
        _marks["started"], _marks["t0"] = t1, t0
        _marks.setdefault("running", t1)  # kubespawner's poll came first (same loop turn)
        seen.cancel()
        jitter.seed(-seed)
        await spawner.stop()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


async def _run(tmp: Path, servers: int, profile: bool) -> dict[str, Any]:
    from jupyterhub.tests.mocking import MockHub

    from aiinfn_hub.spawner.spawner import stop_shared_inventories

    _count_api_calls()
    _time_hooks()
    jitter = _same_jitter()
    MockHub.clear_instance()
    app = MockHub.instance(config=_hub_config(tmp))
    await app.initialize()
    await app.start()
    profiler = cProfile.Profile() if profile else None
    results: dict[str, Any] = {
        kind: {"start": [], "stop": [], "calls": [], "phases": []} for kind in KINDS
    }
    try:
        warmup: Counter[str] = Counter()  # also the shared caches' lists and watches
        shape: dict[str, Any] = {}
        for kind in KINDS[::-1]:  # AIInfnSpawner's first: its containers shape the same pod
            spawner = _spawner(app, kind, 999, shape)
            await _start_stop(spawner, warmup, jitter, 999)
            shape = shape or _containers_of(spawner)
        results["shape"] = shape
        for seconds in _hook_seconds.values():
            seconds.clear()
        for i in range(servers):
            for kind in KINDS[i % 3 :] + KINDS[: i % 3]:  # each goes first by turns
                spawner = _spawner(app, kind, i, shape)
                calls: Counter[str] = Counter()
                if profiler is not None and kind == "aiinfn":
                    profiler.enable()
                started, stopped = await _start_stop(spawner, calls, jitter, i + 1)
                if profiler is not None and kind == "aiinfn":
                    profiler.disable()
                results[kind]["start"].append(started)
                results[kind]["stop"].append(stopped)
                results[kind]["calls"].append(calls)
                results[kind]["phases"].append(_phases())
        results["shared"] = warmup + _background
    finally:
        from kubespawner import KubeSpawner

        await stop_shared_inventories()
        for reflector in list(KubeSpawner.reflectors.values()):
            await reflector.stop()
        if app.http_server:
            app.http_server.stop()
        await app.shutdown_cancel_tasks()
        MockHub.clear_instance()
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
        results["profile"] = out.getvalue()
    return results


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered) * 1000:>9.1f}{p95 * 1000:>9.1f}"


def _report(results: dict[str, Any], servers: int) -> None:
    if "profile" in results:
        print(results["profile"])
    shape = results["shape"]
    print(
        "same-pod: upstream KubeSpawner with AIInfnSpawner's containers: "
        + ", ".join(c["name"] for c in shape["init_containers"] + shape["extra_containers"])
    )
    print(f"{servers} servers of each kind, started and stopped one at a time (ms)")
    print(
        f"{'spawner':<10}{'start p50':>9}{'p95':>9}{'stop p50':>9}{'p95':>9}"
        f"{'total p50':>10}{'mean':>8}{'calls':>7}"
    )
    totals = {}
    for kind in KINDS:
        r = results[kind]
        total = [a + b for a, b in zip(r["start"], r["stop"], strict=True)]
        totals[kind] = statistics.mean(total)
        calls = statistics.mean(sum(c.values()) for c in r["calls"])
        print(
            f"{kind:<10}{_ms(r['start'])}{_ms(r['stop'])}"
            f"{statistics.median(total) * 1000:>10.1f}{totals[kind] * 1000:>8.1f}{calls:>7.1f}"
        )
    for kind in KINDS:
        phases = results[kind]["phases"]
        each = ", ".join(
            f"{part} {statistics.median(p[part] for p in phases) * 1000:.1f}"
            for part in ("to_post", "to_running", "noticed")
        )
        print(f"start p50 in parts (ms), {kind}: {each}")
    for kind in KINDS:
        merged: Counter[str] = sum(results[kind]["calls"], Counter())
        each = ", ".join(f"{name} {n / servers:g}" for name, n in sorted(merged.items()))
        print(f"api calls per spawn, {kind}: {each}")
    for kind in KINDS:
        hooks = _hook_seconds[kind]
        each = ", ".join(f"{n} {hooks[n] / servers * 1000:.1f}" for n in HOOKS if n in hooks)
        print(f"ms per spawn in hooks (nested ones counted in their callers too), {kind}: {each}")
    ours, theirs = _hook_seconds["aiinfn"], _hook_seconds["same-pod"]
    own = sum(ours[n] for n in TOP_LEVEL_HOOKS) + ours["get_pod_manifest"]
    own -= theirs["get_pod_manifest"]
    print(
        f"hooks-ms-per-spawn: {own / servers * 1000:.1f} (the hooks' own time, API calls "
        "included: what AIInfnSpawner adds, without kubespawner's waits)"
    )
    shared = ", ".join(f"{name} {n}" for name, n in sorted(results["shared"].items()))
    print(f"shared caches and first starts, whole run (not per spawn): {shared}")
    extra = statistics.mean(sum(c.values()) for c in results["aiinfn"]["calls"]) - statistics.mean(
        sum(c.values()) for c in results["upstream"]["calls"]
    )
    print(f"extra-api-calls-per-spawn: {extra:+.1f}")
    print(
        f"overhead over upstream's own one-container pod (hooks and pod shape): "
        f"{totals['aiinfn'] / totals['upstream']:.2f}x"
    )
    print(f"spawn-overhead: {totals['aiinfn'] / totals['same-pod']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--servers", type=int, default=100, help="servers of each kind")
    parser.add_argument("--profile", action="store_true", help="profile AIInfnSpawner's spawns")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        emulator = Emulator(
            load_cluster_file(EXAMPLES / "cluster.yaml"), state_dir=Path(tmp) / "emulator"
        ).start()
        try:
            kubeconfig = emulator.write_kubeconfig()
            os.environ["KUBECONFIG"] = str(kubeconfig)
            import kubernetes_asyncio.config.kube_config as kube_config

            # read at import: point it at this emulator (as the tests' kube_env fixture does)
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)
            results = asyncio.run(_run(Path(tmp), args.servers, args.profile))
        finally:
            emulator.stop()
    _report(results, args.servers)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
