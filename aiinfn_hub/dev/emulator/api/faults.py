"""Fault injection for tests: failing calls, latency and broken watches.

Tests of clients (reflectors, informers, the spawner) need the unhappy paths a real cluster
produces now and then: a 500 or 409 on a write, a slow list, a watch cut with 410 Gone. The
API server consults ``Faults`` at the start of every resource request; out-of-process users
reach it through ``POST /_emulator/faults``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ApiError
from ..store import Store

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*")
BREAK_MODES = ("gone", "error", "close")
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
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
    """What to break next.

    Verbs are get, list, watch, create, update, patch, delete, deletecollection or ``*``;
    resources are plurals (``pods``) or ``*``. ``make_app`` attaches the store, which
    ``break_watches`` needs.
    """

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
        """Make the next ``count`` matching requests fail with ``code`` (a ``Status`` body)."""
        _check_verb(verb)
        if count < 1 or not 100 <= code <= 599:
            raise ValueError(f"need count >= 1 and an HTTP error code, got {count}, {code}")
        self._failures.append(_Failure(verb, resource, namespace, count, code, message))

    def add_latency(self, verb: str, resource: str, seconds: float) -> None:
        """Delay every matching request by ``seconds`` (0 removes the delay)."""
        _check_verb(verb)
        if seconds <= 0:
            self._latency.pop((verb, resource), None)
        else:
            self._latency[(verb, resource)] = float(seconds)

    def break_watches(self, resource: str, mode: str = "gone") -> None:
        """End the open watches of ``resource`` (or ``*``).

        ``gone``: an ERROR event carrying a 410 Expired Status, as after etcd compaction;
        ``error``: an ERROR event with a 500 Status; ``close``: the stream just ends.
        """
        if mode not in BREAK_MODES:
            raise ValueError(f"mode must be one of {', '.join(BREAK_MODES)}, got {mode!r}")
        if self.store is None:
            raise RuntimeError("faults are not attached to a store (make_app attaches them)")
        for watcher in self.store.open_watchers():
            if resource in ("*", watcher.rt.plural):
                watcher.break_mode = mode
                self.store.unwatch(watcher)

    def clear(self) -> None:
        """Forget pending failures and latencies."""
        self._failures.clear()
        self._latency.clear()

    # -- used by the API server ------------------------------------------------------------
    def take(self, verb: str, resource: str, namespace: str | None) -> ApiError | None:
        """The injected error for this request, if any (consumes one count)."""
        for failure in self._failures:
            if (
                failure.verb in ("*", verb)
                and failure.resource in ("*", resource)
                and failure.namespace in (None, namespace)
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
        """The delay for this request (the largest matching one)."""
        return max(
            (s for (v, r), s in self._latency.items() if v in ("*", verb) and r in ("*", resource)),
            default=0.0,
        )

    def apply(self, action: str, kwargs: dict[str, Any]) -> None:
        """The HTTP form (``POST /_emulator/faults``) of the methods above; 400 when wrong."""
        if action not in ("fail_next", "add_latency", "break_watches", "clear"):
            raise ApiError.bad_request(
                f"unknown fault action {action!r}: use fail_next, add_latency, break_watches "
                "or clear"
            )
        try:
            getattr(self, action)(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ApiError.bad_request(f"bad arguments for {action}: {exc}") from exc


def _check_verb(verb: str) -> None:
    if verb not in VERBS:
        raise ValueError(f"verb must be one of {', '.join(VERBS)}, got {verb!r}")
