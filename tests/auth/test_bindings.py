"""The binding of hub users to IAM identities: the rule, and its table in a real hub database."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterhub import orm
from sqlalchemy import inspect

from aiinfn_hub.auth import bindings
from aiinfn_hub.auth.bindings import Decision, Identity, decide, identity

ALICE = identity("https://iam.example.org/", "0a1b-alice")
OTHER = identity("https://iam.example.org", "9f8e-someone-else")


@pytest.mark.parametrize(
    ("recorded", "login", "rebind", "decision"),
    [
        (None, ALICE, False, Decision.BIND),
        (None, ALICE, True, Decision.BIND),
        (ALICE, ALICE, False, Decision.KEEP),
        (ALICE, ALICE, True, Decision.KEEP),
        (ALICE, OTHER, False, Decision.REFUSE),
        (ALICE, OTHER, True, Decision.REBIND),
        # same sub from another issuer is another identity
        (ALICE, identity("https://other-iam.example.org", ALICE.subject), False, Decision.REFUSE),
    ],
)
def test_binding_rule(
    recorded: Identity | None, login: Identity, rebind: bool, decision: Decision
) -> None:
    assert decide(recorded, login, rebind) is decision


def test_the_issuer_trailing_slash_does_not_matter() -> None:
    assert identity("https://iam.example.org/", "s") == identity("https://iam.example.org", "s")


@pytest.mark.parametrize("info", [{}, {"sub": ""}, {"sub": 42}, {"sub": "x" * 256}, ["sub"], None])
def test_an_unusable_sub_is_none(info: object) -> None:
    assert bindings.subject_from_user_info(info) is None


def test_bindings_live_next_to_the_hub_tables_and_survive_user_deletion(tmp_path: Path) -> None:
    """A file database made by the hub itself, reopened as after a restart."""
    url = f"sqlite:///{tmp_path}/jupyterhub.sqlite"
    db = orm.new_session_factory(url)()
    bindings.ensure_table(db)
    bindings.ensure_table(db)  # idempotent
    db.add(orm.User(name="alice"))
    db.commit()
    bindings.record(db, "alice", ALICE)
    first = bindings.find(db, "alice")
    assert first is not None and first.subject == ALICE.subject
    bound_at = first.bound_at
    bindings.record(db, "alice", ALICE)  # the same identity signing in again
    assert bindings.find(db, "alice").bound_at == bound_at  # type: ignore[union-attr]
    # the hub deletes the user: the binding stays, so the name cannot be taken over
    db.delete(orm.User.find(db, "alice"))
    db.commit()
    db.close()

    db = orm.new_session_factory(url)()
    assert "aiinfn_iam_bindings" in inspect(db.get_bind()).get_table_names()
    assert bindings.recorded_identity(bindings.find(db, "alice")) == ALICE
    bindings.record(db, "alice", OTHER)
    assert bindings.recorded_identity(bindings.find(db, "alice")) == OTHER


def test_the_signed_out_mark_lasts_until_the_next_login() -> None:
    db = orm.new_session_factory()()
    bindings.ensure_table(db)
    # a user who signed in before bindings existed is bound by the logout itself
    bindings.mark_signed_out(db, "bob", ALICE)
    assert bindings.is_signed_out(db, "bob")
    assert bindings.recorded_identity(bindings.find(db, "bob")) == ALICE
    bindings.record(db, "bob", ALICE)
    assert not bindings.is_signed_out(db, "bob")
    # without an identity there is nothing to record
    bindings.mark_signed_out(db, "carol", None)
    assert bindings.find(db, "carol") is None and not bindings.is_signed_out(db, "carol")
