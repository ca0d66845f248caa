"""Safe, collision-free names for users' and projects' folders and volumes.

The rule (kubespawner's "safe slug"): a name that is already a lowercase DNS label (letters,
digits and ``-``, starting with a letter, at most 40 characters here) is used as it is;
anything else (capitals, dots, unicode, ``..``, very long names) becomes its lowercase
letters/digits/``-`` (possibly empty) followed by ``---`` and 8 hex digits of a hash of the whole
name. Two different names never map to the same folder, and no folder name can contain ``/``,
``..`` or start with ``.``. Project names are DNS labels already (the configuration checks it).
"""

from __future__ import annotations

from kubespawner.slugs import safe_slug

MAX_FOLDER = 40


def user_folder(username: str) -> str:
    """The folder name of ``username``'s home (and of anything else per user)."""
    slug: str = safe_slug(username, max_length=MAX_FOLDER)
    return slug


def volume_name(prefix: str, name: str) -> str:
    """A pod volume name (a DNS label of at most 63 characters) for ``name``."""
    slug: str = safe_slug(name, max_length=62 - len(prefix))
    return f"{prefix}-{slug}"
