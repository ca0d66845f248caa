"""Label and field selectors, parsed and matched as apimachinery does."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..resources import ResourceType

JSON = dict[str, Any]
_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)\s*$")


@dataclass(frozen=True)
class Requirement:
    """One term: ``key op values`` with op in =, !=, in, notin, exists, !exists."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "=="):
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!"


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def parse_label_selector(selector: str | None) -> list[Requirement]:
    """Parse ``a=b,c!=d,e in (f,g),!h``; 400 BadRequest on bad syntax."""
    if not selector or not selector.strip():
        return []
    out: list[Requirement] = []
    for term in _split_terms(selector):
        if m := _EQ_RE.match(term):
            out.append(Requirement(m.group(1), m.group(2), (m.group(3),)))
            continue
        m = _SET_RE.match(term)
        if not m or (m.group(1) and m.group(3)):
            raise ApiError.bad_request(
                f"unable to parse requirement: found '{term.strip()}', expected: label selector"
            )
        neg, key, op, values = m.groups()
        if op:
            vals = tuple(v.strip() for v in values.split(",") if v.strip())
            if not vals:
                raise ApiError.bad_request(
                    f"unable to parse requirement: for '{op}' operator, values set can't be empty"
                )
            out.append(Requirement(key, op, vals))
        else:
            out.append(Requirement(key, "!" if neg else "exists"))
    return out


def labels_match(requirements: list[Requirement], obj: JSON) -> bool:
    """Whether ``obj``'s labels satisfy every requirement (an empty selector matches all)."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


def _field_value(obj: JSON, path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, dict) and path == "source":
        return str(current.get("component", ""))
    return str(current)


def parse_field_selector(selector: str | None, rt: ResourceType) -> Callable[[JSON], bool]:
    """Parse a field selector (=, ==, != on the resource's supported field labels)."""
    if not selector or not selector.strip():
        return lambda _obj: True
    allowed = rt.all_field_labels()
    terms: list[tuple[str, bool, str]] = []
    for term in selector.split(","):
        if not term.strip():
            continue
        m = re.match(r"^\s*([^=!\s]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise ApiError.bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        field, op, value = m.groups()
        if field not in allowed:
            raise ApiError.bad_request(f"field label not supported: {field}")
        terms.append((field, op != "!=", value))

    def match(obj: JSON) -> bool:
        return all((_field_value(obj, f) == v) == eq for f, eq, v in terms)

    return match
