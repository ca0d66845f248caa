"""The one configuration provider: shared per file, reloaded on change, a bad edit kept out."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from aiinfn_hub.config import ConfigProvider, PlatformConfigError, config_provider

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platform.yaml"


def _write(path: Path, text: str, tick: int) -> None:
    """Write and give the file a distinct modification time (coarse clocks on some disks)."""
    path.write_text(text)
    os.utime(path, ns=(tick * 10**9, tick * 10**9))


def test_every_consumer_of_a_file_shares_one_provider(tmp_path: Path) -> None:
    file = tmp_path / "platform.yaml"
    _write(file, EXAMPLE.read_text(), 1)
    assert config_provider(file) is config_provider(str(file))
    assert config_provider(file) is not config_provider(EXAMPLE)


def test_the_same_version_is_the_same_object_and_a_change_is_reloaded(tmp_path: Path) -> None:
    file = tmp_path / "platform.yaml"
    _write(file, EXAMPLE.read_text(), 1)
    provider = ConfigProvider(file)
    first = provider.current()
    assert provider.current() is first  # one snapshot per version: nothing re-read or rebuilt
    _write(
        file,
        EXAMPLE.read_text().replace(
            "  namespace: bunshin\n", "  namespace: bunshin\n  maxActiveJobsPerUser: 3\n"
        ),
        2,
    )
    second = provider.current()
    assert second is not first and second.jobs.max_active_jobs_per_user == 3
    assert first.jobs.max_active_jobs_per_user == 20  # a snapshot taken earlier never changes


def test_an_invalid_edit_is_logged_once_and_the_last_valid_version_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "platform.yaml"
    _write(file, EXAMPLE.read_text(), 1)
    provider = ConfigProvider(file)
    good = provider.current()
    _write(file, EXAMPLE.read_text() + "\nbogusKey: 1\n", 2)
    with caplog.at_level(logging.ERROR, logger="aiinfn_hub.config"):
        assert provider.current() is good
        assert provider.current() is good
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "bogusKey" in errors[0].getMessage()
    assert provider.error is not None and "bogusKey" in str(provider.error)
    file.unlink()
    with caplog.at_level(logging.ERROR, logger="aiinfn_hub.config"):
        assert provider.current() is good and "no such file" in str(provider.error)
        assert provider.current() is good  # a missing file is said once too, not per call
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "no such file" in errors[1].getMessage()
    _write(file, EXAMPLE.read_text(), 3)
    assert provider.current() is not good and provider.error is None


def test_without_a_valid_version_the_error_is_raised(tmp_path: Path) -> None:
    file = tmp_path / "platform.yaml"
    with pytest.raises(PlatformConfigError, match="no such file"):
        ConfigProvider(file).current()
    _write(file, "images: [\n", 1)
    with pytest.raises(PlatformConfigError, match="not valid YAML"):
        ConfigProvider(file).current()
