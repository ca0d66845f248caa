"""Folder and volume names from odd usernames and repository names."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfn_hub.platform.storage.naming import MAX_FOLDER, user_folder, volume_name

SAFE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_plain_names_are_kept_and_odd_ones_are_hashed() -> None:
    assert user_folder("alice") == "alice"
    for odd in ["Alice", "al.ice", "..", "../etc", "ümit", "a" * 80, "", "-x"]:
        folder = user_folder(odd)
        assert SAFE.fullmatch(folder) and "---" in folder, (odd, folder)


@settings(max_examples=300)
@given(st.text(max_size=100))
def test_every_folder_is_a_safe_single_path_component(name: str) -> None:
    folder = user_folder(name)
    assert SAFE.fullmatch(folder)
    assert len(folder) <= MAX_FOLDER and "/" not in folder and ".." not in folder


@settings(max_examples=300)
@given(st.text(max_size=60), st.text(max_size=60))
def test_different_names_never_share_a_folder(a: str, b: str) -> None:
    if a != b:
        assert user_folder(a) != user_folder(b)


@given(st.text(max_size=100))
def test_volume_names_are_dns_labels(name: str) -> None:
    volume = volume_name("cvmfs", name)
    assert len(volume) <= 63 and SAFE.fullmatch(volume) and volume.startswith("cvmfs-")
