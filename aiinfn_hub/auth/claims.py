"""From the provider's claims to a hub username and hub groups (pure functions).

Groups come from the ``wlcg.groups`` claim of the WLCG token profile: a list of group paths
such as ``["/cms", "/cms/analysis", "/lhcb"]``. The mapping, which admins see in the admin panel:

- the leading ``/`` is stripped: ``/cms`` is the hub group ``cms`` (a project when the platform
  configuration lists it under ``projects``);
- a nested path keeps its parents' names joined by the separator (``:`` by default):
  ``/cms/analysis`` becomes ``cms:analysis``. (``/`` cannot be used: hub group names appear in
  URL paths of the REST API.)
- a group is granted only when the claim lists it. INDIGO IAM lists every group a user is in,
  and membership of a subgroup is not membership of its parent, so ``/cms/analysis`` alone does
  not give ``cms``, nor ``/platform-admins/x`` the admin group. Parents are implied only when
  asked (``imply_parents``, the authenticator's ``subgroups_imply_parent``), and never for the
  names in ``exact`` (the admin groups), which always need their own entry.
- path parts must be made of letters, digits, ``.``, ``_`` and ``-``; a group with any other
  part is skipped (and reported), never guessed at.
"""

from __future__ import annotations

import re
from typing import Any

_USERNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
_GROUP_PART = re.compile(r"^[A-Za-z0-9._-]{1,63}$")


class ClaimError(ValueError):
    """A claim is missing or unusable; ``str()`` is the message shown to the user."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def username_from_claims(user_info: Any, claim: str) -> str:
    """The hub username: ``claim`` (``preferred_username``) checked to be a safe name.

    Safe means 1-64 letters, digits, ``.``, ``_`` or ``-``, starting and ending with a letter
    or digit, and no ``..``: such a name is a valid JupyterHub username and maps to a valid
    Kubernetes name. The hub lower-cases it afterwards.
    """
    if not isinstance(user_info, dict):
        raise ClaimError("the identity provider sent malformed user information", status=502)
    value = user_info.get(claim)
    if value is None or value == "":
        raise ClaimError(
            f"your IAM account did not provide a username (claim {claim!r}). "
            "Check that your IAM registration is complete, then sign in again; if it "
            "persists, tell the platform administrators."
        )
    if not isinstance(value, str) or not _USERNAME.fullmatch(value) or ".." in value:
        raise ClaimError(
            f"your IAM username {str(value)[:80]!r} cannot be used on this hub: a username "
            "must be 1-64 letters, digits, '.', '_' or '-', starting and ending with a letter "
            "or digit. Ask the platform administrators to map your account."
        )
    return value


def groups_from_claim(
    value: Any,
    separator: str = ":",
    *,
    imply_parents: bool = False,
    exact: frozenset[str] | set[str] = frozenset(),
) -> tuple[set[str], list[str]]:
    """Hub group names from a ``wlcg.groups``-style claim, and the entries that were skipped.

    Each usable entry gives exactly its own group; with ``imply_parents`` also its parents,
    except those named in ``exact`` (admin groups must be listed themselves, always).

    A missing claim means no groups; a claim that is not a list of strings raises
    :class:`ClaimError` (status 502: the provider sent something malformed).
    """
    if value is None:
        return set(), []
    if not isinstance(value, list | tuple) or not all(isinstance(e, str) for e in value):
        # JSON gives a list; a string, an object or numbers mean a broken provider mapping
        raise ClaimError("the identity provider sent a malformed groups claim", status=502)
    entries: list[str] = list(value)
    groups: set[str] = set()
    skipped: list[str] = []
    for entry in entries:
        parts = entry.strip().strip("/").split("/")
        if not parts or not all(_GROUP_PART.fullmatch(part) for part in parts):
            skipped.append(entry)
            continue
        groups.add(separator.join(parts))
        if imply_parents:
            parents = {separator.join(parts[:depth]) for depth in range(1, len(parts))}
            groups.update(parents - set(exact))
    return groups, skipped
