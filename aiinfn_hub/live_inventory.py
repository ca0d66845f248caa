"""The hub's live accelerator inventory: informer caches in, availability per model out."""

from __future__ import annotations

from .config import PlatformConfig
from .inventory import (
    DEFAULT_RESERVED_KEY,
    ModelAvailability,
    accelerator_availability,
    usage_by_node,
)
from .kube.informer import ClusterView
from .kube.pod_resources import Resources


class LiveInventory:
    """Accelerator availability from a :class:`ClusterView`, recounted only when pods change."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self._usage_version = -1
        self._usage: dict[str, Resources] = {}

    def usage(self) -> dict[str, Resources]:
        if self.view.pods.version != self._usage_version:
            self._usage = usage_by_node(self.view.pods.objects())
            self._usage_version = self.view.pods.version
        return self._usage

    def availability(
        self,
        config: PlatformConfig,
        projects: set[str] | None,
        reserved_key: str = DEFAULT_RESERVED_KEY,
    ) -> list[ModelAvailability]:
        """Per-model free/total for a user in ``projects`` (None: everything, for admins)."""
        return accelerator_availability(
            config,
            self.view.nodes.objects(),
            self.usage(),
            projects=projects,
            reserved_key=reserved_key,
        )
