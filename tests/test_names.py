"""Names derived from usernames are injective: one person, one folder, Secret, bucket, pod."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from kubespawner.slugs import safe_slug

from aiinfn_hub.bunshin.job import job_name, user_label
from aiinfn_hub.platform.names import user_server_slug, user_slug
from aiinfn_hub.platform.storage.naming import user_folder
from aiinfn_hub.spawner.token_secret import token_secret_name

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Two valid IAM usernames whose kubespawner "safe slug" (32 bits of hash) is the same: found by
# a search of ~10^5 candidates in 4 seconds. Before this module, both users got one home.
COLLIDING = ("alice___._--__-.rossi", "alice___.----_-.rossi")

# adversarial usernames: what IAM allows (letters, digits, . _ -) plus anything an admin or
# another authenticator could create (capitals, unicode, dashes, the hashed forms themselves)
iam_names = st.from_regex(r"[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?", fullmatch=True)
lookalikes = st.builds(
    lambda a, b: a + b,
    st.sampled_from(["alice", "alice-rossi", "x", "alice-rossi---", "a--b", ""]),
    st.text(alphabet="abz019._-A\u00fc-", max_size=30),
)
any_names = st.one_of(iam_names, lookalikes, st.text(max_size=70))


def test_kubespawner_safe_slug_collides_on_this_pair_and_ours_does_not() -> None:
    a, b = COLLIDING
    assert safe_slug(a, max_length=40) == safe_slug(b, max_length=40)  # the hole
    assert user_folder(a) != user_folder(b)
    assert token_secret_name(a) != token_secret_name(b)
    assert user_label(a) != user_label(b)
    assert job_name(a, "abc123") != job_name(b, "abc123")
    assert user_server_slug(a, "") != user_server_slug(b, "")


def test_clean_names_are_kept_and_others_carry_130_bits_of_hash() -> None:
    assert user_slug("alice") == "alice" and user_slug("bob-smith") == "bob-smith"
    hashed = user_slug("alice.rossi")
    prefix, digest = hashed.split("---")
    assert prefix == "alice-rossi" and re.fullmatch(r"[a-z2-7]{26}", digest)
    assert user_server_slug("alice", "gpu") == "alice--gpu"


@settings(max_examples=500)
@given(any_names, any_names)
def test_different_users_never_share_a_name(a: str, b: str) -> None:
    if a != b:
        assert user_slug(a) != user_slug(b)
        assert token_secret_name(a) != token_secret_name(b)


@settings(max_examples=500)
@given(any_names, any_names, any_names, any_names)
def test_different_servers_never_share_a_pod_name(a: str, s: str, b: str, t: str) -> None:
    if (a, s) != (b, t):
        assert user_server_slug(a, s) != user_server_slug(b, t)


@settings(max_examples=300)
@given(any_names, any_names)
def test_default_servers_never_meet_named_ones(a: str, b: str) -> None:
    # a pod named for user a's default server is never the pod of user b's named server "srv"
    assert user_server_slug(a, "") != user_server_slug(b, "srv")


@settings(max_examples=300)
@given(any_names, any_names)
def test_every_name_is_a_dns_label_and_a_single_path_component(name: str, server: str) -> None:
    for value in (user_slug(name), user_server_slug(name, server)):
        assert DNS_LABEL.fullmatch(value), value
        assert "/" not in value and not value.startswith(".")
    assert len(job_name(name, "abc123")) <= 63
    assert len(f"jupyter-{user_server_slug(name, server)}") <= 63
