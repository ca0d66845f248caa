"""Folder and volume names for users, projects and repositories (see :mod:`aiinfn_hub.names`).

A username maps to its folder injectively: clean names (``alice``) are kept, anything else is a
readable prefix plus 130 bits of hash, so no two users ever share a home, a Secret or a bucket,
and no folder name can contain ``/``, ``..`` or start with ``.``. Project names are DNS labels
already (the configuration checks it).
"""

from __future__ import annotations

from ..names import slug, user_slug

MAX_FOLDER = 45  # MAX_PREFIX + len("---") + HASH_CHARS


def user_folder(username: str) -> str:
    """The folder name of ``username``'s home (and of anything else per user)."""
    return user_slug(username)


def volume_name(prefix: str, name: str) -> str:
    """A pod volume name (a DNS label of at most 63 characters) for ``name``."""
    return f"{prefix}-{slug(prefix, name, max_clean=62 - len(prefix))}"
