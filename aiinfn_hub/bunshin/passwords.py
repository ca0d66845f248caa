"""The service's credentials folder: the JuiceFS metadata engines' passwords."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import BunshinError
from .juicefs import PASSWORD_KEY

log = logging.getLogger("bunshin")


def read_password(folder: Path, project: str) -> str | None:
    """The metadata engine's password for ``project``: ``<project>.meta-password``, else
    ``meta-password``, else none. Read at each use so a rotated Secret takes effect."""
    for name in (f"{project}.{PASSWORD_KEY}", PASSWORD_KEY):
        try:
            return (folder / name).read_text().strip() or None
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("cannot read %s: %s", folder / name, exc)
            raise BunshinError(
                500,
                "misconfigured",
                "the service cannot read the project's file system credentials; tell the "
                "platform administrators",
            ) from None
    return None
