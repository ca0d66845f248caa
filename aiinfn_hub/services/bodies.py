"""Request bodies: bounded in size, then decoded as JSON."""

from __future__ import annotations

import json
from typing import Any

from .errors import ServiceError


def json_body(raw: bytes, limit: int) -> Any:
    """The decoded body (None when empty); 413 past ``limit`` bytes, 400 when not JSON.

    The HTTP server refuses larger bodies before reading them (``serve_http``); this check
    holds when the limit in force is lower than the server's (a configuration reloaded)."""
    if len(raw) > limit:
        raise ServiceError(413, "too-large", f"the body is larger than {limit} bytes")
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise ServiceError(400, "bad-request", "the body is not valid JSON") from None
