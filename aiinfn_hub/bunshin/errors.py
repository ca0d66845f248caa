"""Errors of the Bunshin API: an HTTP status, a short code and a message for the user."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..services.errors import ServiceError

if TYPE_CHECKING:
    from ..kube.rest import KubeError

log = logging.getLogger("bunshin")


class BunshinError(ServiceError):
    """Sent as ``{"error": code, "message": message}`` with ``status``; nothing was created."""


def cluster_error(what: str, error: KubeError) -> BunshinError:
    """What the user is told when the cluster failed ``what`` (e.g. "creating the job"); the
    administrators' detail (the object, the API server's answer) goes to the log."""
    log.warning("%s failed: %s", what, error)
    if error.status == 0 or error.status >= 500:
        return BunshinError(
            503,
            "unavailable",
            f"the cluster did not answer while {what} ({error.reason}); nothing was left "
            "half-made, try again in a moment",
        )
    return BunshinError(500, "cluster-refused", f"the cluster refused {what}: {error.message}")
