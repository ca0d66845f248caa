"""Times as the Kubernetes API writes them (RFC 3339, ``2026-12-07T14:02:05Z``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def api_time(text: Any) -> datetime | None:
    """``text`` as an aware datetime in UTC; None when absent or not a time (a field a user's
    object may carry anything in, so never an exception)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
