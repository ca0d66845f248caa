"""``aiinfn-hub check-config FILE``: validate a platform configuration before deploying it.

Administrators run it on the YAML they are about to put into the Helm values (or in CI), so a
typo is reported with its path and line instead of a hub that fails to start.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from .config import PlatformConfigError, load_platform_config


def check_config_command(path: str, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Validate the file at ``path``; return the process exit code.

    Valid: prints ``PATH: valid`` and a short summary of what the configuration offers to
    ``out``, and one ``warning: ...`` line per risky choice to ``err``, returns 0. Invalid,
    missing or unreadable: prints ``PATH: N error(s)`` and one indented
    ``key.path: what was expected`` line per problem to ``err``, returns 1.
    ``out`` and ``err`` default to the process's stdout and stderr at call time (not at import
    time, so redirections made after import are honoured).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        config = load_platform_config(Path(path))
    except PlatformConfigError as exc:
        count = len(exc.lines)
        print(f"{path}: {count} error{'' if count == 1 else 's'}", file=err)
        for line in exc.lines:
            print(f"  {line}", file=err)
        return 1
    print(f"{path}: valid", file=out)
    print(config.summary(), file=out)
    for warning in config.warnings():
        print(f"warning: {warning}", file=err)
    return 0
