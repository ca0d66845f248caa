"""How a simulated container ends: the test hook and the per-pod annotations.

Annotations on a pod (all optional):

- ``emulator.aiinfn.dev/outcome``: ``run`` (the default: keep running), ``succeed`` (exit 0),
  ``fail`` (exit 1) or ``process`` (run the container command as a local process, when the
  emulator runs annotated pods as processes: ``run_annotated_processes``; else it is simulated
  like ``run``);
- ``emulator.aiinfn.dev/outcome-after``: seconds from the container's start to its exit;
- ``emulator.aiinfn.dev/exit-code``: the exit code to use instead of 0 or 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OUTCOME_ANNOTATION = "emulator.aiinfn.dev/outcome"
OUTCOME_AFTER_ANNOTATION = "emulator.aiinfn.dev/outcome-after"
EXIT_CODE_ANNOTATION = "emulator.aiinfn.dev/exit-code"
OUTCOMES = ("succeed", "fail", "run", "process")


@dataclass(frozen=True)
class Outcome:
    """``kind`` is one of OUTCOMES; ``after`` counts from the container's (re)start."""

    kind: str = "run"
    after: float = 0.0
    exit_code: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in OUTCOMES:
            raise ValueError(
                f"unknown outcome {self.kind!r}: expected one of {', '.join(OUTCOMES)}"
            )

    @property
    def ends(self) -> bool:
        return self.kind in ("succeed", "fail")

    @property
    def code(self) -> int:
        """The exit code the containers end with."""
        if self.exit_code is not None:
            return self.exit_code
        return 0 if self.kind == "succeed" else 1

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> Outcome | None:
        """The outcome the annotations ask for; None when there is none (or it is malformed)."""
        annotations = annotations or {}
        kind = annotations.get(OUTCOME_ANNOTATION)
        if kind not in OUTCOMES:
            return None
        try:
            after = float(annotations.get(OUTCOME_AFTER_ANNOTATION) or 0)
            raw_code = annotations.get(EXIT_CODE_ANNOTATION)
            exit_code = int(raw_code) if raw_code not in (None, "") else None
        except ValueError:
            return cls(kind)
        return cls(kind, max(after, 0.0), exit_code)
