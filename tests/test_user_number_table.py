"""The table of user numbers is made once per database, and in every database that needs it."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session

from aiinfn_hub.spawner.user_ids import TABLE, user_number


def test_each_new_database_gets_the_table_and_numbers_of_its_own() -> None:
    first, second = create_engine("sqlite://"), create_engine("sqlite://")
    with Session(first) as db:
        assert [user_number(db, name) for name in ("alice", "bob", "alice")] == [1, 2, 1]
    # a second database (a new hub, a test's own) is checked for the table too
    with Session(second) as db:
        assert user_number(db, "bob") == 1
    assert TABLE in inspect(second).get_table_names()
    with Session(first) as db:  # the first database kept its numbers
        assert (user_number(db, "bob"), user_number(db, "carol")) == (2, 3)
