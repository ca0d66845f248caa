"""Each hub user's own number, allocated once in the hub's database and never reused.

A user's numeric id (``storage.home.uidBase`` + this number) runs their notebooks and jobs and
owns their home and the files they write in shared project folders. It must never pass to
another person: JupyterHub's own user ids are reused by SQLite when the newest user is deleted,
so the numbers live in a table of their own, ``aiinfn_user_ids`` (username -> number, both
unique), whose rows are never deleted: deleting a hub user keeps its number reserved, and the
same username coming back gets the same number (and finds its home still its own).

If the hub database is lost, numbers are allocated again in the order users start servers; a
home owned by another id then stops the start with a message for the administrators (see
``storage-init.sh``) instead of handing one person's files to another.
"""

from __future__ import annotations

import weakref
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, Unicode, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

TABLE = "aiinfn_user_ids"
# the engines (or connections) whose database has the table: checked once each
_tables_made: weakref.WeakSet[Any] = weakref.WeakSet()


class _Base(DeclarativeBase):
    """Our own metadata: the hub's alembic migrations never see (or drop) this table."""


class UserNumber(_Base):
    """One row per username that ever started a server."""

    __tablename__ = TABLE

    username: Mapped[str] = mapped_column(Unicode(255), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    allocated_at: Mapped[datetime] = mapped_column(DateTime)


def user_number(db: Session, username: str) -> int:
    """The number of ``username``: the recorded one, else the next free one (recorded now).

    The hub runs in one process and this does no await, so two starts cannot interleave here;
    the unique constraint still guards the table if anything else writes it.
    """
    bind = db.get_bind()
    if bind not in _tables_made:  # once per database: the table is never dropped
        _Base.metadata.create_all(bind, checkfirst=True)
        _tables_made.add(bind)
    for _ in range(5):
        row = db.get(UserNumber, username)
        if row is not None:
            return row.number
        number = (db.scalar(select(func.max(UserNumber.number))) or 0) + 1
        db.add(
            UserNumber(
                username=username,
                number=number,
                allocated_at=datetime.now(UTC).replace(tzinfo=None),
            )
        )
        try:
            db.commit()
            return number
        except IntegrityError:  # taken meanwhile: read again
            db.rollback()
    raise RuntimeError(f"could not allocate a user number for {username!r}")
