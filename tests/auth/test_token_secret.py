"""The per-user token Secret: names, labels, content, schema validity."""

from __future__ import annotations

import base64

import kubernetes_validate
from hypothesis import given, settings
from hypothesis import strategies as st
from kubespawner.slugs import is_valid_label, is_valid_object_name

from aiinfn_hub.spawner.token_secret import (
    TOKEN_KEY,
    token_secret_labels,
    token_secret_manifest,
    token_secret_name,
)


def test_manifest_holds_the_token_under_one_key_and_no_owner() -> None:
    secret = token_secret_manifest("alice", "jupyterhub", "tok.en", 0)
    assert secret["metadata"]["name"] == "aiinfn-token-alice"
    assert base64.b64decode(secret["data"][TOKEN_KEY]) == b"tok.en"
    assert list(secret["data"]) == ["token"]
    assert "ownerReferences" not in secret["metadata"]
    assert secret["metadata"]["annotations"] == {
        "aiinfn.infn.it/token-expires-at": "1970-01-01T00:00:00Z"
    }
    kubernetes_validate.validate(secret, "1.33.0", strict=True)


@settings(max_examples=200, deadline=None)  # no speed assumption on loaded machines
@given(st.text(min_size=1, max_size=120))
def test_any_username_gives_valid_names_and_labels(username: str) -> None:
    name = token_secret_name(username)
    assert is_valid_object_name(name) and len(name) <= 63
    assert all(is_valid_label(v) for v in token_secret_labels(username).values())


def test_names_do_not_collide_for_lookalike_usernames() -> None:
    names = {
        token_secret_name(u) for u in ["alice", "Alice", "al.ice", "al-ice", "al_ice", "ålice"]
    }
    assert len(names) == 6
