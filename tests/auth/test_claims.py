"""Usernames and groups from IAM claims."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfn_hub.auth.claims import ClaimError, groups_from_claim, username_from_claims


@pytest.mark.parametrize("name", ["alice", "a", "Alice.Rossi", "a_b-c.d", "x" * 64, "0pilot9"])
def test_safe_usernames_pass_unchanged(name: str) -> None:
    assert username_from_claims({"preferred_username": name}, "preferred_username") == name


@pytest.mark.parametrize(
    "name",
    [
        "../etc",
        "a..b",
        ".hidden",
        "trailing-",
        "with space",
        "é",
        "a/b",
        "x" * 65,
        "a@b",
        42,
        "alice\n",  # `$` would match before a final newline
    ],
)
def test_unsafe_usernames_are_refused_with_the_rule(name: Any) -> None:
    with pytest.raises(ClaimError, match="cannot be used on this hub: a username must be") as exc:
        username_from_claims({"preferred_username": name}, "preferred_username")
    assert exc.value.status == 403


@pytest.mark.parametrize("info", [{}, {"preferred_username": ""}, {"preferred_username": None}])
def test_missing_username_claim_names_the_claim(info: dict[str, Any]) -> None:
    with pytest.raises(ClaimError, match="claim 'preferred_username'"):
        username_from_claims(info, "preferred_username")


def test_userinfo_that_is_not_an_object_is_a_provider_error() -> None:
    with pytest.raises(ClaimError) as exc:
        username_from_claims(["alice"], "preferred_username")
    assert exc.value.status == 502


@settings(deadline=None)  # a loaded CI machine must not fail a correct example for slowness
@given(st.text(max_size=80))
def test_any_accepted_username_is_safe(name: str) -> None:
    try:
        accepted = username_from_claims({"u": name}, "u")
    except ClaimError:
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", accepted) and ".." not in accepted
    assert len(accepted) <= 64 and not accepted.endswith((".", "-", "_"))


def test_groups_strip_the_slash_and_nest_with_the_separator() -> None:
    groups, skipped = groups_from_claim(["/cms", "/cms/analysis/jets", "lhcb"], ":")
    assert groups == {"cms", "cms:analysis:jets", "lhcb"}
    assert skipped == []


def test_a_subgroup_alone_does_not_give_its_parent() -> None:
    """IAM lists every group a user is in: /cms/x without /cms is not membership of cms."""
    assert groups_from_claim(["/cms/x"])[0] == {"cms:x"}
    assert groups_from_claim(["/platform-admins/anything"])[0] == {"platform-admins:anything"}


def test_parents_are_implied_only_when_asked_and_never_the_exact_ones() -> None:
    entries = ["/cms/analysis/jets", "/platform-admins/x", "/ops/admins/y"]
    implied, _ = groups_from_claim(entries, ":", imply_parents=True)
    assert {"cms", "cms:analysis", "platform-admins", "ops:admins"} <= implied
    groups, _ = groups_from_claim(
        entries, ":", imply_parents=True, exact={"platform-admins", "ops:admins"}
    )
    assert groups == {
        "cms",
        "cms:analysis",
        "cms:analysis:jets",
        "platform-admins:x",
        "ops",
        "ops:admins:y",
    }
    # an exact group still counts when the claim lists it itself
    listed, _ = groups_from_claim(
        ["/platform-admins"], imply_parents=True, exact={"platform-admins"}
    )
    assert listed == {"platform-admins"}


def test_groups_with_unusable_parts_are_skipped_and_reported() -> None:
    groups, skipped = groups_from_claim(["/cms", "/bad group", "//", "/ok/wé", "/x\n/y"], ":")
    assert groups == {"cms"}
    assert skipped == ["/bad group", "//", "/ok/wé", "/x\n/y"]


def test_missing_groups_claim_means_no_groups() -> None:
    assert groups_from_claim(None) == (set(), [])


@pytest.mark.parametrize("value", ["/cms", 3, [1, 2], [["/cms"]], {"/cms": True}])
def test_malformed_groups_claim_is_a_provider_error(value: Any) -> None:
    with pytest.raises(ClaimError, match="malformed groups claim") as exc:
        groups_from_claim(value)
    assert exc.value.status == 502


@settings(deadline=None)
@given(st.lists(st.text(max_size=30), max_size=8), st.sampled_from([":", "."]), st.booleans())
def test_every_group_comes_from_a_claim_entry(
    entries: list[str], separator: str, imply_parents: bool
) -> None:
    exact = {"platform-admins"}
    groups, skipped = groups_from_claim(
        entries, separator, imply_parents=imply_parents, exact=exact
    )
    mapped = {
        separator.join(entry.strip().strip("/").split("/"))
        for entry in entries
        if entry not in skipped
    }
    # every entry is either mapped or reported
    assert all(
        e in skipped or separator.join(e.strip().strip("/").split("/")) in groups for e in entries
    )
    for group in groups:
        assert group and "/" not in group
        if not imply_parents or group in exact:
            assert group in mapped  # granted only by its own entry
        else:
            assert any(m == group or m.startswith(group + separator) for m in mapped)
