"""Finishes what a service that died half-way left (a restart, a node drain, a kill).

- A submission creates its Job unreleased and queues it last (see :mod:`.job`), so it leaves
  at most a suspended Job without its queue label, which never runs, and what it owns (the
  sandbox ConfigMap, by owner reference). Such Jobs older than ``SUBMISSION_GRACE_SECONDS``
  are removed (a submission in progress, in this replica or another, is never that old).
- A cancel marks the Job, then makes its Kueue Workload inactive; between the two, Kueue
  could admit the job again. Workloads still active of Jobs marked cancelled are made
  inactive, so a cancel that was accepted is carried out.

The janitor looks at start and then every ``interval`` seconds; a cluster that does not
answer is logged and tried at the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..kube.rest import KubeError
from ..platform import vocabulary as v
from .cluster import JobCluster
from .job import MANAGED_BY, interrupted_submissions, unfinished_cancels

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0


@dataclass
class Sweep:
    """What one round did: Jobs removed, Workloads deactivated (by name)."""

    removed: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)


class SubmissionJanitor:
    """Sweeps ``namespace`` (``sweep``), periodically once started."""

    def __init__(
        self, cluster: JobCluster, namespace: str, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, now: datetime | None = None) -> Sweep:
        """One round: remove the Jobs of interrupted submissions, finish interrupted cancels."""
        done = Sweep()
        # one list serves both: interrupted_submissions keeps only the unreleased Jobs
        jobs = await self.cluster.list_objects(
            "Job", self.namespace, f"{v.MANAGED_BY}={MANAGED_BY}"
        )
        for name in interrupted_submissions(jobs, now or datetime.now(UTC)):
            if await self.cluster.delete("Job", self.namespace, name):
                log.warning("removed job %s: its submission was interrupted", name)
                done.removed.append(name)
        workloads = await self.cluster.workloads(self.namespace)
        for workload in unfinished_cancels(jobs, workloads):
            if await self.cluster.patch_workload(
                self.namespace, workload, {"spec": {"active": False}}
            ):
                name = workload["metadata"]["name"]
                log.warning("deactivated workload %s: its job's cancel was interrupted", name)
                done.deactivated.append(name)
        return done

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bunshin-janitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except KubeError as exc:
                log.warning(
                    "could not look for interrupted submissions and cancels "
                    "(next try in %.0f s): %s",
                    self.interval,
                    exc,
                )
            await asyncio.sleep(self.interval)
