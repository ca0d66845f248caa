"""Who is calling a service: a plain value, made once per request from the hub's answer.

Services take it instead of a tornado handler, so their rules can be tested (and reused by
pages, the API and command-line tools) without HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Caller:
    """A hub user as a service sees them: ``scopes`` are those the hub granted the token or
    the OAuth session; ``admin`` is the hub's admin flag."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False

    @classmethod
    def from_hub_model(cls, model: Mapping[str, Any]) -> Caller:
        """From the user model HubAuth returns (``name``, ``groups``, ``scopes``, ``admin``)."""
        return cls(
            name=str(model["name"]),
            groups=frozenset(model.get("groups") or ()),
            scopes=frozenset(model.get("scopes") or ()),
            admin=bool(model.get("admin")),
        )
