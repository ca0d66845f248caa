"""The hub's logging safeguard against OAuth secrets in debug logs."""

from __future__ import annotations

import logging

from aiinfn_hub.logs import DropOAuthlibDebug, logging_config


def record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "Saving grant %s", ({"code": "c"},), None)


def test_oauthlib_debug_records_are_dropped_and_others_kept() -> None:
    drop = DropOAuthlibDebug()
    assert not drop.filter(record("oauthlib.oauth2.rfc6749.grant_types.base", logging.DEBUG))
    assert drop.filter(record("oauthlib.oauth2", logging.WARNING))
    assert drop.filter(record("JupyterHub", logging.DEBUG))


def test_the_filter_is_wired_to_the_console_handler() -> None:
    config = logging_config()
    assert config["handlers"] == {"console": {"filters": ["aiinfn_no_secrets"]}}
    factory = config["filters"]["aiinfn_no_secrets"]["()"]  # type: ignore[index]
    assert factory == "aiinfn_hub.logs.DropOAuthlibDebug"
