"""The project's JuiceFS credentials Secret in the jobs' namespace, kept up to date.

Written when missing or stale (passwords rotate: the folder is read at each use), never when
someone else owns the name (a Secret without our ``managed-by`` label), one writer per project
at a time in a replica, and a race with another replica (409) read again. A Secret written by
this replica is trusted for ``SECRET_RECHECK_SECONDS`` before it is read again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from ..config import PlatformConfig
from ..kube.rest import KubeError, KubeRest
from ..platform import vocabulary as v
from ..services.config_source import ConfigSource, as_config_source
from .cluster import JobCluster
from .errors import BunshinError, cluster_error
from .job import MANAGED_BY
from .juicefs import JuiceFSPlan, credentials_secret
from .passwords import read_password

JSON = dict[str, Any]
SECRET_RECHECK_SECONDS = 60.0
log = logging.getLogger("bunshin")


class JuiceFSCredentials:
    """Writes the projects' JuiceFS Secrets (``ensure_juicefs_secret``)."""

    def __init__(self, kube: KubeRest, config: PlatformConfig | ConfigSource) -> None:
        self.cluster = JobCluster(kube)
        self.config = as_config_source(config)
        self._checked: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure_juicefs_secret(
        self, plan: JuiceFSPlan, config: PlatformConfig | None = None
    ) -> None:
        """Write the project's Secret when it is missing or stale (``config``: the snapshot of
        the submission, else the one in force)."""
        config = config or self.config.current()
        settings = config.jobs.offload.juicefs
        if settings is None:
            raise BunshinError(500, "misconfigured", "offloaded storage is not configured")
        password = read_password(Path(settings.credentials_dir), plan.project)
        wanted = credentials_secret(
            settings, plan.project, config.jobs.namespace, password, MANAGED_BY
        )
        digest = json.dumps(wanted, sort_keys=True)
        lock = self._locks.setdefault(plan.project, asyncio.Lock())
        async with lock:
            seen_digest, seen_at = self._checked.get(plan.project, ("", 0.0))
            if seen_digest == digest and time.monotonic() - seen_at < SECRET_RECHECK_SECONDS:
                return
            for attempt in range(3):
                try:
                    await self._write(wanted)
                    break
                except KubeError as exc:
                    if exc.conflict and attempt < 2:
                        continue  # created or changed meanwhile: read it again
                    raise cluster_error(
                        "writing the project's file system credentials", exc
                    ) from None
            self._checked[plan.project] = (digest, time.monotonic())

    async def _write(self, wanted: JSON) -> None:
        meta = wanted["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            current = await self.cluster.read("Secret", namespace, name)
        except KubeError as exc:
            raise cluster_error("reading the project's file system credentials", exc) from None
        if current is None:
            await self.cluster.create(wanted)
            return
        labels = current["metadata"].get("labels") or {}
        if labels.get(v.MANAGED_BY) != MANAGED_BY:
            log.error("Secret %s/%s exists and is not Bunshin's", namespace, name)
            raise BunshinError(
                500,
                "misconfigured",
                "the project's file system credentials cannot be written (a Secret of that "
                "name belongs to someone else); tell the platform administrators",
            )
        if current.get("data") != wanted["data"] or any(
            labels.get(k) != value for k, value in meta["labels"].items()
        ):
            replacement = json.loads(json.dumps(wanted))
            replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.cluster.replace(replacement)
