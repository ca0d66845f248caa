"""The hub's live accelerator inventory: informer caches in, availability per model out."""

from __future__ import annotations

from typing import Any

from ..config import PlatformConfig
from ..kube.informer import ClusterView
from ..platform.placement import DEFAULT_RESERVED_KEY
from .availability import ModelAvailability, Usage, accelerator_availability, node_usage


class LiveInventory:
    """Accelerator availability from a :class:`ClusterView`.

    Usage is recounted only when the pod cache changes (or the notebooks' priority does), and
    each answer is memoized until the node or pod cache changes, so rendering many forms
    between changes costs no recount.
    """

    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self._usage_key: tuple[int, int | None] = (-1, None)
        self._usage = Usage({}, {})
        # values keep the config they were computed for, so a recycled id() cannot match
        self._answers: dict[Any, tuple[PlatformConfig, list[ModelAvailability]]] = {}
        self._answers_key: tuple[int, int] = (-1, -1)

    def usage(self, notebook_priority: int | None = None) -> Usage:
        key = (self.view.pods.version, notebook_priority)
        if key != self._usage_key:
            self._usage = node_usage(self.view.pods.objects(), notebook_priority)
            self._usage_key = key
        return self._usage

    def availability(
        self,
        config: PlatformConfig,
        projects: set[str] | None,
        reserved_key: str = DEFAULT_RESERVED_KEY,
        notebook_priority: int | None = None,
    ) -> list[ModelAvailability]:
        """Per-model free/total for a user in ``projects`` (None: everything, for admins); with
        ``notebook_priority``, the units held by lower-priority (batch) pods are counted apart."""
        versions = (self.view.nodes.version, self.view.pods.version)
        if versions != self._answers_key:
            self._answers = {}
            self._answers_key = versions
        key = (
            id(config),
            frozenset(projects) if projects is not None else None,
            reserved_key,
            notebook_priority,
        )
        cached = self._answers.get(key)
        if cached is not None and cached[0] is config:
            return cached[1]
        answer = accelerator_availability(
            config,
            self.view.nodes.objects(),
            self.usage(notebook_priority),
            projects=projects,
            reserved_key=reserved_key,
        )
        self._answers[key] = (config, answer)
        return answer
