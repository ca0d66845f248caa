"""Kernel names for discovered environments: valid kernelspec names, never shared by two paths.

A name is ``<prefix><tag>-<path in the area>``. When the path is already a valid name it is
used as it is (so notebooks keep readable kernel names); when sanitising changes anything (an
upper-case letter, a ``/`` between folders, a space) a hash of the exact path is appended. Plain
names never end like a hashed one (such a path is hashed too), so the mapping is injective.
"""

from __future__ import annotations

import hashlib
import re

# jupyter_client's rule for kernelspec names
VALID_NAME = re.compile(r"[a-z0-9._-]+")
# area tags end at the first "-" of a name: letters and digits only
VALID_TAG = re.compile(r"[a-z0-9]+")
HASH_LENGTH = 12
_HASHED_TAIL = re.compile(rf"-[0-9a-f]{{{HASH_LENGTH}}}\Z")
_INVALID_RUN = re.compile(r"[^a-z0-9._-]+")


def path_hash(tag: str, relative_path: str) -> str:
    """A short, stable hash of an environment's place (area tag and path inside the area)."""
    digest = hashlib.sha256(f"{tag}\0{relative_path}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:HASH_LENGTH]


def kernel_name(prefix: str, tag: str, relative_path: str) -> str:
    """The kernel name of the environment at ``relative_path`` (``/``-separated) in area ``tag``.

    ``prefix`` must be ``""`` or a valid name part and ``tag`` must match :data:`VALID_TAG`
    (the spec manager validates both when configured).
    """
    if not VALID_TAG.fullmatch(tag):
        raise ValueError(f"area tag {tag!r} must be lowercase letters and digits only")
    if prefix and not VALID_NAME.fullmatch(prefix):
        raise ValueError(f"name prefix {prefix!r} may hold only a-z, 0-9, '.', '_' and '-'")
    plain = VALID_NAME.fullmatch(relative_path) is not None
    if plain and not _HASHED_TAIL.search(relative_path):
        return f"{prefix}{tag}-{relative_path}"
    readable = _INVALID_RUN.sub("-", relative_path.lower()).strip("-") or "env"
    return f"{prefix}{tag}-{readable}-{path_hash(tag, relative_path)}"
