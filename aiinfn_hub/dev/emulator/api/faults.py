"""Fault injection for tests: failing calls, latency and broken watches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ApiError
from ..store import Store

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class _Failure:
    verb: str
    resource: str
    namespace: str | None
    remaining: int
    code: int
    message: str | None


@dataclass
class Faults:
    """What to break next. Verbs: get, list, watch, create, update, patch, delete,
    deletecollection or ``*``; resources by plural (``pods``) or ``*``."""

    _failures: list[_Failure] = field(default_factory=list)
    _latency: dict[tuple[str, str], float] = field(default_factory=dict)
    store: Store | None = None

    def fail_next(
        self,
        verb: str,
        resource: str,
        count: int = 1,
        code: int = 500,
        message: str | None = None,
        namespace: str | None = None,
    ) -> None:
        """Make the next ``count`` matching requests fail with ``code``."""
        self._failures.append(_Failure(verb, resource, namespace, count, code, message))

    def add_latency(self, verb: str, resource: str, seconds: float) -> None:
        """Delay every matching request by ``seconds``."""
        self._latency[(verb, resource)] = seconds

    def break_watches(self, resource: str, mode: str = "gone") -> None:
        """End the open watches of ``resource``: an ERROR 410 event ("gone"), an ERROR 500
        event ("error"), or a plain close ("close")."""
        if self.store is None:
            raise RuntimeError("faults are not attached to a store")
        for watcher in list(self.store._watchers):
            if resource in ("*", watcher.rt.plural):
                watcher.break_mode = mode
                self.store.unwatch(watcher)

    def clear(self) -> None:
        self._failures.clear()
        self._latency.clear()

    def take(self, verb: str, resource: str, namespace: str | None) -> ApiError | None:
        """The injected error for this request, if any (consumes one count)."""
        for failure in self._failures:
            if (
                failure.verb in ("*", verb)
                and failure.resource in ("*", resource)
                and (failure.namespace in (None, namespace))
            ):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return ApiError(
                    failure.code,
                    _REASONS.get(failure.code, "InternalError"),
                    failure.message or f"injected fault: {verb} {resource}",
                )
        return None

    def latency(self, verb: str, resource: str) -> float:
        return max(
            (s for (v, r), s in self._latency.items() if v in ("*", verb) and r in ("*", resource)),
            default=0.0,
        )

    def apply(self, action: str, kwargs: dict[str, Any]) -> None:
        """The HTTP form (``POST /_emulator/faults``) of the methods above."""
        if action not in ("fail_next", "add_latency", "break_watches", "clear"):
            raise ApiError.bad_request(f"unknown fault action {action!r}")
        try:
            getattr(self, action)(**kwargs)
        except TypeError as exc:
            raise ApiError.bad_request(f"bad arguments for {action}: {exc}") from exc
