"""Kubernetes resource quantities ("500m", "4Gi", "1e3") as exact fractions."""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Fraction] = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_RE = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$")


def parse_quantity(value: str | int | float) -> Fraction:
    """Parse a quantity; ValueError for anything Kubernetes would reject."""
    if isinstance(value, int | float):
        return Fraction(value)
    m = _RE.match(str(value).strip())
    if not m or m.group(1) in ("", ".", "+", "-"):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    number, suffix = Fraction(m.group(1)), m.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        exponent = int(suffix[1:])
        scale = Fraction(10) ** exponent
        return number * scale
    return number * _DECIMAL[suffix]
