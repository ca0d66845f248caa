"""One configuration provider per platform file: loaded, validated and reloaded on change.

The spawner, the authenticator, Bunshin and later services ask the same provider for the
configuration, and each operation takes one snapshot (``provider.current()``) and keeps it to
the end: a spawn never validates its options against one version and mounts against another.

A file edited into an invalid state is reported (once per version, with the bad key's path) and
the last valid version stays in force, so one typo does not stop every spawn; the first load has
no previous version and raises.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import PlatformConfigError
from .loading import load_platform_config
from .models import PlatformConfig

log = logging.getLogger("aiinfn_hub.config")


@dataclass(frozen=True)
class _Version:
    """What tells one state of the file from another without reading it."""

    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> _Version:
        stat = os.stat(path)
        return cls(stat.st_mtime_ns, stat.st_size, stat.st_ino)


class ConfigProvider:
    """The platform configuration of one file, re-read when the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._config: PlatformConfig | None = None
        self._version: _Version | None = None
        self._refused: _Version | None = None
        self.error: PlatformConfigError | None = None  # why the file is not in force

    def current(self) -> PlatformConfig:
        """The configuration in force; raises :class:`PlatformConfigError` before a first load."""
        try:
            version = _Version.of(self.path)
        except OSError:
            version = _UNREADABLE  # gone or unreadable: loading says why, in the loader's words
        if version == self._version and self._config is not None:
            return self._config
        if version == self._refused and self.error is not None:
            return self._keep(version, self.error)
        try:
            config = load_platform_config(self.path)
        except PlatformConfigError as exc:
            return self._keep(version, exc)
        if self._config is not None:
            log.info("Platform configuration %s reloaded", self.path)
        self._config, self._version, self._refused, self.error = config, version, None, None
        return config

    def _keep(self, version: _Version, error: PlatformConfigError) -> PlatformConfig:
        """The previous configuration (after saying once why the file's state is refused)."""
        if self._config is None:
            raise error
        if version != self._refused:
            log.error("%s\nThe previous platform configuration stays in force.", error)
        self._refused, self.error = version, error
        return self._config


# the state of a file that cannot be stat'ed: refused once, like any other bad state
_UNREADABLE = _Version(-1, -1, -1)
_providers: dict[Path, ConfigProvider] = {}


def config_provider(path: str | Path) -> ConfigProvider:
    """The process's one provider of ``path``, shared by every consumer."""
    key = Path(path).absolute()
    provider = _providers.get(key)
    if provider is None:
        provider = _providers[key] = ConfigProvider(key)
    return provider
