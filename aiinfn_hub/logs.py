"""Logging safeguards for the hub: nothing secret in its logs, whatever the log level."""

from __future__ import annotations

import logging


class DropOAuthlibDebug(logging.Filter):
    """Drop oauthlib's DEBUG records: they print OAuth authorization codes and tokens.

    JupyterHub attaches oauthlib's logger to its own at the hub's level, so a hub running
    with ``--debug`` would write the codes of its own OAuth provider into the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("oauthlib") and record.levelno <= logging.DEBUG)


def logging_config() -> dict[str, object]:
    """A traitlets ``logging_config`` adding the filter to the hub's console handler."""
    return {
        "filters": {"aiinfn_no_secrets": {"()": f"{__name__}.DropOAuthlibDebug"}},
        "handlers": {"console": {"filters": ["aiinfn_no_secrets"]}},
    }
