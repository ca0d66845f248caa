"""``aiinfn-hub check-config FILE``: validate a platform configuration before deploying it.

Administrators run it on the YAML they are about to put into the Helm values (or in CI), so a
typo is reported with its path and line instead of a hub that fails to start.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from .config import PlatformConfig, PlatformConfigError, load_platform_config


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
    for warning in [*config.warnings(), *jobs_quota_warnings(config)]:
        print(f"warning: {warning}", file=err)
    return 0


def jobs_quota_warnings(config: PlatformConfig) -> list[str]:
    """Accelerator quotas of the jobs' pool that leave jobs waiting forever.

    The Bunshin service runs with every hub, so jobs are on whenever the catalogue has
    accelerators; a model without units in ``jobs.poolAccelerators`` gets quota 0 in the pool
    ClusterQueue, and Kueue keeps every job asking for it queued (not failed, so the user is
    not told why). Valid, since a site may keep its GPUs for notebooks: a warning.
    """
    jobs = config.jobs
    if not config.accelerators:
        return []
    found: list[str] = []
    if not any(units > 0 for units in jobs.pool_accelerators.values()):
        found.append(
            "jobs.poolAccelerators is empty: the Kueue ClusterQueue "
            f"{jobs.pool_queue} lends jobs no accelerator (quota 0 for every model), so a job "
            "asking for a GPU, MIG slice or FPGA stays queued; list the units of each model "
            "jobs may use, e.g. `{t4: 4}` (notebooks preempt jobs, so every unit may be lent)"
        )
    catalogue = {model.name for model in config.accelerators}
    unknown = sorted(set(jobs.pool_accelerators) - catalogue)
    if unknown:
        found.append(
            f"jobs.poolAccelerators names {', '.join(unknown)}, not in the accelerators "
            f"catalogue ({', '.join(sorted(catalogue))}): those units are lent to no model"
        )
    return found
