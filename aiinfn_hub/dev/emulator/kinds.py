"""The kinds one emulated cluster serves: the built-in table plus those of established CRDs.

A real cluster serves a custom kind only once its ``CustomResourceDefinition`` is established,
and validates its objects against the CRD's schema. The emulator starts with Kueue's kinds
already served, without a schema (``resources.RESOURCE_TYPES``, ``custom=True``): the local
platform, ``aiinfn-dev emulator`` and many tests create Kueue objects without installing
Kueue first, as if its CRDs had been applied with schemas that accept anything. A CRD for the
same group and plural, applied over the API or given at start (``ClusterSpec.crds``,
``aiinfn-dev emulator --crds DIR``), replaces such a built-in kind with the CRD's names, scope
and schema; from then on the emulator behaves as a cluster with that CRD, and deleting the
CRD removes the kind and its objects (the built-in does not come back, as nothing would bring
it back on a real cluster). Kinds that are not custom (pods, jobs...) cannot be replaced.

Each store has its own registry (``Store.kinds``), so emulators in one process never share
the CRDs installed in one of them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .resources import RESOURCE_TYPES, ResourceType
from .structural import apply_defaults

JSON = dict[str, Any]
Key = tuple[str, str]


@dataclass(frozen=True)
class DefinedKind:
    """A kind served because a CRD is established: its resource, schemas and table columns.

    ``schemas`` maps each served version to its ``openAPIV3Schema`` (None: a version without
    schema, which v1 CRDs cannot have but the emulator tolerates). ``storage`` is the version
    objects are stored at; all served versions share one schema shape, as there is no
    conversion webhook (only ``apiVersion`` changes between versions).
    """

    rt: ResourceType
    crd_name: str
    storage: str
    schemas: dict[str, JSON | None] = field(default_factory=dict)
    columns: dict[str, list[JSON]] = field(default_factory=dict)


class ServedKinds:
    """Lookup of the served resource types, changed as CRDs come and go."""

    def __init__(self, builtins: Iterable[ResourceType] = RESOURCE_TYPES) -> None:
        self._builtin: dict[Key, ResourceType] = {rt.key: rt for rt in builtins}
        self._defined: dict[Key, DefinedKind] = {}
        # built-in custom kinds a CRD replaced, then took away with it
        self._withdrawn: set[Key] = set()

    def all(self) -> tuple[ResourceType, ...]:
        """Every served resource type: built-ins first (in table order), then CRD kinds."""
        out = [
            self._defined[key].rt if key in self._defined else rt
            for key, rt in self._builtin.items()
            if key not in self._withdrawn
        ]
        out.extend(d.rt for key, d in self._defined.items() if key not in self._builtin)
        return tuple(out)

    def get(self, group: str, plural: str) -> ResourceType | None:
        """The served resource ``plural`` of ``group``, or None."""
        key = (group, plural)
        defined = self._defined.get(key)
        if defined is not None:
            return defined.rt
        if key in self._withdrawn:
            return None
        return self._builtin.get(key)

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        """The served resource of a kind in a group (kinds are unique within a group)."""
        return next((rt for rt in self.all() if rt.group == group and rt.kind == kind), None)

    def defined(self, rt: ResourceType) -> DefinedKind | None:
        """The CRD definition behind ``rt``, or None for a built-in kind."""
        return self._defined.get(rt.key)

    def defined_by(self, crd_name: str) -> DefinedKind | None:
        """The kind the CRD ``crd_name`` serves, or None."""
        return next((d for d in self._defined.values() if d.crd_name == crd_name), None)

    def schema(self, rt: ResourceType, version: str) -> JSON | None:
        """The ``openAPIV3Schema`` objects of ``rt`` at ``version`` are checked against."""
        defined = self._defined.get(rt.key)
        return None if defined is None else defined.schemas.get(version)

    def printer_columns(self, rt: ResourceType, version: str) -> list[JSON] | None:
        """A CRD kind's ``additionalPrinterColumns`` at ``version`` (None: a built-in kind)."""
        defined = self._defined.get(rt.key)
        return None if defined is None else defined.columns.get(version, [])

    def replaceable(self, key: Key) -> bool:
        """Whether a CRD may serve ``key``: any name except a non-custom built-in's."""
        builtin = self._builtin.get(key)
        return builtin is None or builtin.custom

    def install(self, kind: DefinedKind) -> None:
        """Serve (or serve anew, after a CRD update) a CRD's kind."""
        self._defined[kind.rt.key] = kind
        self._withdrawn.discard(kind.rt.key)

    def remove(self, key: Key) -> None:
        """Stop serving a CRD's kind (its CRD is gone)."""
        self._defined.pop(key, None)
        if key in self._builtin:
            self._withdrawn.add(key)

    def served_view(self, rt: ResourceType, obj: JSON, version: str) -> JSON:
        """``obj`` as read: a CRD kind's defaults are applied on read too, as the real server
        does, so objects stored before a default was added show it."""
        schema = self.schema(rt, version)
        if schema is None:
            return obj
        out = copy.deepcopy(obj)
        apply_defaults(out, schema)
        return out
