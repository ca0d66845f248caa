"""``aiinfn-hub check-config FILE``: validate a platform configuration as an administrator would."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from .config import PlatformConfigError, load_platform_config


def check_config_command(path: str, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print a summary and return 0, or print each error (path of the bad key) and return 1."""
    out = out or sys.stdout
    err = err or sys.stderr
    file = Path(path)
    if not file.is_file():
        print(f"{path}: no such file (give the path of the platform configuration YAML)", file=err)
        return 1
    try:
        config = load_platform_config(file)
    except PlatformConfigError as exc:
        print(f"{path}: {len(exc.lines)} error(s):", file=err)
        for line in exc.lines:
            print(f"  {line}", file=err)
        return 1
    print(f"{path}: valid", file=out)
    print(config.summary(), file=out)
    return 0
