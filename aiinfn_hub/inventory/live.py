"""The hub's live accelerator inventory: informer caches in, availability per model out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..config import PlatformConfig
from ..kube.informer import ClusterView
from ..platform.placement import DEFAULT_RESERVED_KEY
from .availability import (
    ModelAvailability,
    ModelServers,
    Usage,
    count_availability,
    offered_servers,
)
from .ledger import UsageLedger

log = logging.getLogger(__name__)
JSON = dict[str, Any]
MAX_MEMOIZED = 256  # answers kept per cache version (one per project set, usually a few)


class LiveInventory:
    """Accelerator availability from a :class:`ClusterView`.

    What pods hold is kept in a :class:`UsageLedger` that follows the pod informer event by
    event (rebuilt on each relist), so a change costs the difference of one pod, not a recount.
    What nodes offer each user is recomputed only when the nodes change, and each answer is
    memoized until the node or pod cache changes, so rendering many forms between changes
    costs nothing more.
    """

    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self.ledger = UsageLedger()
        self._ledger_broken = False
        self._usages: dict[int | None, Usage] = {}
        self._usages_version = -1
        # values keep the config they were computed for, so a recycled id() cannot match
        self._offers: dict[Any, tuple[PlatformConfig, list[ModelServers]]] = {}
        self._offers_version = -1
        self._answers: dict[Any, tuple[PlatformConfig, list[ModelAvailability]]] = {}
        self._answers_key: tuple[int, int] = (-1, -1)
        view.pods.subscribe(self)

    # -- following the pod informer (CacheListener) ----------------------------------------------

    def relisted(self, cache: Mapping[str, JSON]) -> None:
        """The pod cache was replaced: count it again."""
        self._ledger_broken = True  # until the rebuild is done
        self.ledger.rebuild(cache)
        self._ledger_broken = False

    def changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        """One pod changed: apply its difference."""
        try:
            self.ledger.update(key, new)
        except Exception:  # a pod we cannot count: recount from the cache at the next read
            self._ledger_broken = True
            raise

    # -- answers ---------------------------------------------------------------------------------

    def usage(self, notebook_priority: int | None = None) -> Usage:
        """What pods hold per node (and what lower-priority pods hold), as ``node_usage``."""
        version = self.view.pods.version
        if version != self._usages_version:
            self._usages = {}
            self._usages_version = version
        if self._ledger_broken:
            log.warning("recounting the pods after a failed update of the usage ledger")
            self.relisted(self.view.pods.cache)
        usage = self._usages.get(notebook_priority)
        if usage is None:
            usage = self._usages[notebook_priority] = self.ledger.usage(notebook_priority)
        return usage

    def _offer(
        self, config: PlatformConfig, projects: set[str] | None, reserved_key: str
    ) -> list[ModelServers]:
        if self.view.nodes.version != self._offers_version:
            self._offers = {}
            self._offers_version = self.view.nodes.version
        key = (id(config), frozenset(projects) if projects is not None else None, reserved_key)
        cached = self._offers.get(key)
        if cached is not None and cached[0] is config:
            return cached[1]
        if len(self._offers) >= MAX_MEMOIZED:
            self._offers = {}
        offer = offered_servers(
            config, self.view.nodes.objects(), projects=projects, reserved_key=reserved_key
        )
        self._offers[key] = (config, offer)
        return offer

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
        if len(self._answers) >= MAX_MEMOIZED:
            self._answers = {}
        answer = count_availability(
            self._offer(config, projects, reserved_key), self.usage(notebook_priority)
        )
        self._answers[key] = (config, answer)
        return answer
