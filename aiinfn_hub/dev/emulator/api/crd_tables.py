"""Table columns of a CRD's kind: NAME, then its ``additionalPrinterColumns``.

As apiextensions' table convertor prints them: each column's ``jsonPath`` read from the object
(a missing value is a null cell, which kubectl shows as ``<none>``), ``date`` columns as ages.
Only simple paths (``.spec.cohortName``, ``.status.conditions[0].type``) are understood; a
CRD without columns gets an Age column, as the API server defaults one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]
Row = list[Any]
_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def json_path_value(obj: Any, path: str) -> Any:
    """The value at a simple JSONPath, or None when a step is missing."""
    current = obj
    for key, index in _STEP.findall(path.strip().removeprefix("{").removesuffix("}")):
        if key and isinstance(current, dict):
            current = current.get(key)
        elif index and isinstance(current, list) and int(index) < len(current):
            current = current[int(index)]
        else:
            return None
    return current


def crd_printer(
    columns: list[JSON], age: Callable[[str | None], str]
) -> tuple[list[JSON], Callable[[JSON], Row]]:
    """Column definitions and a row maker for a CRD version's printer columns."""
    wanted = columns or [_AGE]
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}
    ]
    definitions.extend(
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": int(c.get("priority", 0)),
        }
        for c in wanted
    )

    def row(obj: JSON) -> Row:
        cells: Row = [obj["metadata"]["name"]]
        for column in wanted:
            value = json_path_value(obj, str(column.get("jsonPath", "")))
            if column.get("type") == "date" and value is not None:
                value = age(str(value))
            cells.append(value)
        return cells

    return definitions, row
