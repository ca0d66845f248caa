"""Where a service gets the platform configuration: one snapshot per request or use case.

In production it is the shared :func:`aiinfn_hub.config.provider.config_provider`, which
reloads the file when it changes; tests and benchmarks pass a fixed configuration.
"""

from __future__ import annotations

from typing import Protocol

from ..config import PlatformConfig


class ConfigSource(Protocol):
    def current(self) -> PlatformConfig:
        """The configuration in force now: take it once and keep it to the end of the use case."""
        ...


class FixedConfig:
    """A configuration that never changes."""

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config

    def current(self) -> PlatformConfig:
        return self.config


def as_config_source(config: PlatformConfig | ConfigSource) -> ConfigSource:
    """``config`` itself when it is a source, else a :class:`FixedConfig` of it."""
    if isinstance(config, PlatformConfig):
        return FixedConfig(config)
    return config
