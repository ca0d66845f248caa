"""Errors of the Bunshin API: an HTTP status, a short code and a message for the user."""

from __future__ import annotations


class BunshinError(Exception):
    """Sent as ``{"error": code, "message": message}`` with ``status``; nothing was created."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
