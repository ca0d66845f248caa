"""Names derived from usernames: one person, one name (pure functions).

Homes, token Secrets, buckets, JuiceFS folders, pod names and label values are all named from
the hub username, so two different users must never get the same name: otherwise the second
one's server mounts the first one's home. The rule (an injective map, checked by property tests):

- a *clean* name, already a lowercase DNS label without ``--`` (``[a-z0-9]+(-[a-z0-9]+)*``)
  and at most :data:`MAX_CLEAN` characters, is used as it is: ``alice``, ``bob-smith``;
- anything else (dots, underscores, capitals, unicode, long names) becomes a readable prefix
  (its lowercase letters and digits, at most :data:`MAX_PREFIX` characters, ``x`` if none), then
  ``---``, then 26 base32 characters (130 bits) of a SHA-256 of the whole name:
  ``alice.rossi`` -> ``alice-rossi---<26 characters>``.

Clean names never contain ``--``, hashed ones always contain ``---``, and a pair (user, server)
joined as ``<user>--<server>`` when both are clean contains ``--`` but never ``---``; hashed
inputs are domain-separated, so two names can only meet through a SHA-256 collision (out of
reach). Every result is a valid DNS label and label value (at most 63 characters, starting and
ending with a letter or digit): usable as a folder, a Secret name suffix, a bucket part or a
label value. kubespawner's own "safe slug" keeps only 32 bits of hash, which a search of about
2^32 usernames defeats.
"""

from __future__ import annotations

import base64
import hashlib
import re

MAX_CLEAN = 40
MAX_PREFIX = 16
HASH_CHARS = 26  # base32 characters: 130 bits
MAX_PAIR = 48
_CLEAN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _digest(kind: str, *parts: str) -> str:
    """26 base32 characters of SHA-256 over ``kind`` and ``parts`` (NUL-separated, so
    ``("ab", "c")`` and ``("a", "bc")`` differ, and a user never hashes like a pair)."""
    data = "\0".join((kind, *parts)).encode("utf-8", "surrogatepass")
    return base64.b32encode(hashlib.sha256(data).digest()).decode("ascii").lower()[:HASH_CHARS]


def _prefix(text: str) -> str:
    """A readable hint of ``text`` for hashed names: lowercase letters/digits with single dashes."""
    words = _NOT_ALNUM.sub("-", text.lower()).strip("-")
    return words[:MAX_PREFIX].strip("-") or "x"


def is_clean(name: str, max_length: int = MAX_CLEAN) -> bool:
    """Whether ``name`` is used as it is (a short lowercase DNS label without ``--``)."""
    return len(name) <= max_length and _CLEAN.fullmatch(name) is not None


def slug(kind: str, name: str, max_clean: int = MAX_CLEAN) -> str:
    """``name`` if it is clean and at most ``max_clean`` long, else its hashed form.

    ``kind`` separates the hash domains (a user's hash never equals a bucket's). The result
    is at most ``max(max_clean, MAX_PREFIX + 3 + HASH_CHARS)`` characters long.
    """
    if is_clean(name, max_clean):
        return name
    return f"{_prefix(name)}---{_digest(kind, name)}"


def user_slug(username: str) -> str:
    """The name standing for ``username`` in folders, Secrets, buckets and labels."""
    return slug("user", username)


def user_server_slug(username: str, servername: str) -> str:
    """The name standing for one server of ``username`` (``servername`` empty: the default)."""
    if not servername:
        return user_slug(username)
    if (
        is_clean(username)
        and is_clean(servername)
        and len(username) + len(servername) + 2 <= MAX_PAIR
    ):
        return f"{username}--{servername}"
    return f"{_prefix(username)}---{_digest('server', username, servername)}"
