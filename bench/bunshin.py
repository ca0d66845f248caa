"""Benchmark: Bunshin submissions over HTTP, through the hub's proxy, with real hub tokens.

    .venv/bin/python bench/bunshin.py [--mode both] [--users 4] [--clients 20] [--jobs 400]
                                      [--rate 50] [--duration 20] [--keep 40]
                                      [--profile-service FILE]

Starts what the integration tests start (``bench/bunshin_platform.py``): the emulated cluster
(in this process), the local OpenID provider, a real JupyterHub with configurable-http-proxy,
AIInfnSpawner and the Bunshin service (hub-managed). ``--users`` demo users (at most 4) sign in
through the provider, start their server (a local process) and get an API token from the hub.
Every submission is ``POST /services/bunshin/api/v1/jobs`` with ``Authorization: token …``
through the proxy: tornado, HubOAuth, the Hub API read of the user's server, policy, the Job
builder and the Kubernetes calls are all in what is measured. The clients run in a process of
their own. After a warm-up (one submission per user), two modes, each from an empty jobs'
namespace:

- closed loop (``--mode closed``): ``--clients`` concurrent clients submit, each as soon as its
  previous answer came, ``--jobs`` submissions in all;
- open loop (``--mode open``): submissions sent at a fixed offered rate, ``--rate`` per second
  for ``--duration`` seconds, whatever the answers; latency counts from the moment each was due,
  so a service falling behind shows it (no coordinated omission).

Meanwhile each user keeps at most ``--keep`` Jobs, the oldest deleted straight from the
emulator's store (jobs finishing and being cleaned up; not counted as API calls): every
submission lists the user's jobs, and without this those lists would grow with the run far
beyond what the quota allows. Each mode prints throughput (jobs/s), p50/p95/p99 latency,
refused submissions, Kubernetes API calls per job (counted at the emulator's HTTP layer by verb
and resource, watches apart, with the emulator's time answering them), Hub API calls per
request (the hub's own request counts: token lookups ``GET /hub/api/user`` and user reads
``GET /hub/api/users/{name}``) and the processor time per job of each part (hub, proxy,
service, emulator, clients). ``--profile-service FILE`` runs the service under cProfile.
The last line is ``api-calls-per-job: N`` of the last mode run.

Targets (issue 14): p95 under 100 ms at 50/s offered, at least 200 jobs/s closed-loop on 2
cores, API calls per job at the minimum: 4 (read the server's pod, list the user's jobs,
create the Job, list them again, since several replicas of the service may race past the
quota). The default run takes about a minute and a half.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from bunshin_platform import (
    KubeCallCounter,
    Platform,
    cpu_seconds,
    hub_api_counts,
    started_platform,
)

BODY = {"command": ["python", "train.py"], "cpu": 1, "memory": "4Gi"}
# read the source pod, list the user's jobs (quota), create the Job, list again (replicas race)
MINIMUM_CALLS = 4


@dataclass
class Run:
    """What one mode measured."""

    name: str
    latencies: list[float] = field(default_factory=list)  # seconds, of accepted submissions
    refused: Counter[int] = field(default_factory=Counter)  # HTTP status → count
    elapsed: float = 0.0
    kube: Counter[str] = field(default_factory=Counter)
    kube_ms: Counter[str] = field(default_factory=Counter)  # the emulator's time answering
    hub: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds, by part of the platform
    clients_cpu: float = 0.0  # seconds, of the process that drove the load

    @property
    def sent(self) -> int:
        return len(self.latencies) + sum(self.refused.values())


async def submit(
    session: aiohttp.ClientSession, url: str, token: str, due: float, run: Run
) -> None:
    """One submission; its latency counts from ``due`` (``time.perf_counter`` clock)."""
    try:
        async with session.post(
            url, json=BODY, headers={"Authorization": f"token {token}"}
        ) as answer:
            await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0  # no answer
    if status == 201:
        run.latencies.append(time.perf_counter() - due)
    else:
        run.refused[status] += 1


async def closed_loop(url: str, tokens: list[str], clients: int, jobs: int) -> Run:
    run = Run(f"closed loop: {clients} clients, {jobs} submissions")
    sent = iter(range(jobs))

    async def client(session: aiohttp.ClientSession) -> None:
        for i in sent:
            await submit(session, url, tokens[i % len(tokens)], time.perf_counter(), run)

    async with _session(clients) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        run.elapsed = time.perf_counter() - began
    return run


async def open_loop(url: str, tokens: list[str], rate: float, duration: float) -> Run:
    count = int(rate * duration)
    run = Run(f"open loop: {rate:g}/s offered for {duration:g} s ({count} submissions)")
    async with _session(count) as session:
        began = time.perf_counter()
        tasks = []
        for i in range(count):
            due = began + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            token = tokens[i % len(tokens)]
            tasks.append(asyncio.create_task(submit(session, url, token, due, run)))
        await asyncio.gather(*tasks)
        run.elapsed = time.perf_counter() - began
    return run


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=120),
    )


def drive(mode: str, url: str, tokens: list[str], args: argparse.Namespace) -> Run:
    """One mode's load (in a process of its own: the emulator, in this one, would otherwise
    share the interpreter lock with the clients and slow their clocks)."""
    began = time.process_time()
    if mode == "closed":
        run = asyncio.run(closed_loop(url, tokens, args.clients, args.jobs))
    else:
        run = asyncio.run(open_loop(url, tokens, args.rate, args.duration))
    run.clients_cpu = time.process_time() - began
    return run


async def measured(
    platform: Platform,
    counter: KubeCallCounter,
    mode: str,
    args: argparse.Namespace,
    clients: ProcessPoolExecutor,
) -> Run:
    """One mode, from an empty jobs' namespace, with the calls it caused; meanwhile each
    user's oldest jobs beyond ``--keep`` are deleted (jobs finishing and cleaned up)."""
    platform.prune_jobs(0)
    await asyncio.sleep(1)  # the deletions' watch events settle
    counter.take()
    hub_before = hub_api_counts(platform.hub)
    cpu_before = cpu_seconds(platform.hub)
    tokens = [u.token for u in platform.users]
    loop = asyncio.get_running_loop()
    load = loop.run_in_executor(clients, drive, mode, platform.jobs_url, tokens, args)
    while not load.done():
        await asyncio.to_thread(platform.prune_jobs, args.keep)
        await asyncio.wait([load], timeout=0.05)
    run = load.result()
    run.kube, run.kube_ms = counter.take()
    cpu = cpu_seconds(platform.hub)
    run.hub = hub_api_counts(platform.hub) - hub_before
    run.cpu = {name: cpu[name] - cpu_before[name] for name in cpu}
    run.cpu["clients"] = run.clients_cpu
    return run


def report(run: Run) -> float:
    """Print one mode's figures; returns its Kubernetes API calls per job."""
    accepted = len(run.latencies)
    print(f"\n== {run.name}")
    print(f"accepted: {accepted}  refused: {dict(run.refused) or 0}  wall: {run.elapsed:.2f} s")
    if accepted:
        ms = sorted(x * 1000 for x in run.latencies)
        p50 = statistics.median(ms)
        p95, p99 = (ms[min(len(ms) - 1, int(len(ms) * q))] for q in (0.95, 0.99))
        print(f"throughput: {accepted / run.elapsed:.1f} jobs/s")
        print(
            f"latency p50: {p50:.1f} ms  p95: {p95:.1f} ms  p99: {p99:.1f} ms  max: {ms[-1]:.1f} ms"
        )
    jobs = max(accepted, 1)
    per_job = sum(run.kube.values()) / jobs
    breakdown = ", ".join(
        f"{k}: {v} ({run.kube_ms[k] / v:.1f} ms each)" for k, v in sorted(run.kube.items())
    )
    print(f"kubernetes API calls: {sum(run.kube.values())}: {breakdown}")
    emulator_ms = sum(run.kube_ms.values()) / jobs
    print(
        f"  per job: {per_job:.2f} (minimum {MINIMUM_CALLS}: GET the server's pod, LIST the "
        f"user's jobs, POST the Job, LIST again); the emulator's time per job: {emulator_ms:.1f} ms"
    )
    sent = max(run.sent, 1)
    lookups, reads = run.hub["SelfAPIHandler"], run.hub["UserAPIHandler"]
    print(
        f"hub API calls: {sum(run.hub.values())} {dict(run.hub)}; per request: "
        f"{sum(run.hub.values()) / sent:.3f} (token lookups {lookups / sent:.3f}, "
        f"user reads {reads / sent:.3f})"
    )
    cpu = ", ".join(f"{name} {seconds * 1000 / jobs:.1f}" for name, seconds in run.cpu.items())
    print(f"processor time per job (ms): {cpu}")
    return per_job


async def main_async(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-bunshin-") as tmp,
        KubeCallCounter().attached() as counter,
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as clients,
    ):
        began = time.perf_counter()
        with started_platform(Path(tmp), args.users, args.profile_service) as platform:
            print(
                f"platform up in {time.perf_counter() - began:.1f} s: "
                f"{len(platform.users)} users with a server and a token"
            )
            warm = Run("warm-up")
            async with _session(len(platform.users)) as session:
                for user in platform.users:
                    await submit(session, platform.jobs_url, user.token, time.perf_counter(), warm)
            if warm.refused:
                raise SystemExit(f"the warm-up submissions were refused: {dict(warm.refused)}")
            per_job = 0.0
            for mode in ("closed", "open") if args.mode == "both" else (args.mode,):
                per_job = report(await measured(platform, counter, mode, args, clients))
            platform.prune_jobs(0)
    print(f"\napi-calls-per-job: {per_job:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--users", type=int, default=4, help="users with a server and a token (1-4; default 4)"
    )
    parser.add_argument(
        "--mode", choices=("closed", "open", "both"), default="both", help="default: both"
    )
    parser.add_argument(
        "--clients", type=int, default=20, help="closed loop: concurrent clients (default 20)"
    )
    parser.add_argument(
        "--jobs", type=int, default=400, help="closed loop: submissions (default 400)"
    )
    parser.add_argument(
        "--rate", type=float, default=50, help="open loop: submissions per second (default 50)"
    )
    parser.add_argument(
        "--duration", type=float, default=20, help="open loop: seconds (default 20)"
    )
    parser.add_argument(
        "--keep",
        type=int,
        default=40,
        help="jobs each user keeps meanwhile, the oldest deleted (jobs finishing and cleaned "
        "up: the quota, 20 active, plus 20 finished kept; default 40)",
    )
    parser.add_argument(
        "--profile-service",
        type=Path,
        metavar="FILE",
        help="run the service under cProfile and write its profile to FILE (pstats) at the end",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
