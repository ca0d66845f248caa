"""The error a service sends its caller: an HTTP status, a short code and a message."""

from __future__ import annotations


class ServiceError(Exception):
    """Sent as ``{"error": code, "message": message}`` with ``status`` (or shown on a page).

    ``message`` is for the user: what happened and what to do. What administrators need (the
    original exception) is logged where it happened, never put here.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
