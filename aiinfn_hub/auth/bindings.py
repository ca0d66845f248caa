"""Hub users bound to their IAM identity (issuer + ``sub``), kept in the hub's own database.

``preferred_username`` is a name an IAM account *has*, not who it *is*: an account deleted and
registered again, or renamed, can give the same username to another person. The ``sub`` claim
is the account's stable identifier, so each hub user is bound to the ``(issuer, sub)`` of its
first login and a later login with the same username and another identity is refused.

Why a table of its own and not ``auth_state``: the hub rewrites ``auth_state`` at every login
and renewal, logout empties it, and it is unreadable once the crypt key is rotated or lost, so a
binding kept there could vanish and fail open. A row in the hub database (the same SQLite or
PostgreSQL database, the same backups) survives all of that, and also the deletion of the hub
user: deleting ``alice`` in the admin panel does not let another IAM account become ``alice``
and find her home folder; admins re-bind on purpose (``IAMAuthenticator.rebind_users``).
``sub`` is an identifier, not a secret, so it is stored in clear for admins to inspect.

The same row remembers that the user signed out (``signed_out_at``), so no renewal happens
until the next login even if a request that was renewing tokens at logout writes them back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Unicode
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

TABLE = "aiinfn_iam_bindings"
MAX_SUBJECT = 255  # OpenID Connect Core 2: sub is at most 255 ASCII characters


class _Base(DeclarativeBase):
    """Our own metadata: the hub's alembic migrations never see (or drop) this table."""


class IAMBinding(_Base):
    """One row per hub username: the IAM identity it belongs to."""

    __tablename__ = TABLE

    username: Mapped[str] = mapped_column(Unicode(255), primary_key=True)
    issuer: Mapped[str] = mapped_column(Unicode(1023))
    subject: Mapped[str] = mapped_column(Unicode(MAX_SUBJECT))
    bound_at: Mapped[datetime] = mapped_column(DateTime)
    signed_out_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


@dataclass(frozen=True)
class Identity:
    """An IAM identity: the issuer (without trailing ``/``) and the ``sub`` it gives."""

    issuer: str
    subject: str


class Decision(enum.Enum):
    """What a login does to the binding of its username."""

    BIND = "bind"  # first login (or first since bindings exist): record the identity
    KEEP = "keep"  # the recorded identity signs in again
    REBIND = "rebind"  # another identity, and admins asked for the binding to be replaced
    REFUSE = "refuse"  # another identity: not the account the hub user belongs to


def identity(issuer: str, subject: str) -> Identity:
    return Identity(issuer.rstrip("/"), subject)


def decide(recorded: Identity | None, login: Identity, rebind: bool) -> Decision:
    """The binding rule, as a pure function."""
    if recorded is None:
        return Decision.BIND
    if recorded == login:
        return Decision.KEEP
    return Decision.REBIND if rebind else Decision.REFUSE


def ensure_table(db: Session) -> None:
    """Create the table if missing (idempotent; the hub's database may be new or old)."""
    _Base.metadata.create_all(db.get_bind(), checkfirst=True)


def find(db: Session, username: str) -> IAMBinding | None:
    return db.get(IAMBinding, username)


def recorded_identity(row: IAMBinding | None) -> Identity | None:
    return Identity(row.issuer, row.subject) if row is not None else None


def record(db: Session, username: str, login: Identity, now: datetime | None = None) -> None:
    """Bind ``username`` to ``login`` (replacing any binding) and clear the signed-out mark.

    ``bound_at`` changes only with the identity: it says since when the binding holds.
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    row = find(db, username)
    if row is None:
        row = IAMBinding(username=username, issuer=login.issuer, subject=login.subject)
        db.add(row)
    if recorded_identity(row) != login or row.bound_at is None:
        row.issuer, row.subject, row.bound_at = login.issuer, login.subject, now
    row.signed_out_at = None
    db.commit()


def mark_signed_out(
    db: Session, username: str, current: Identity | None, now: datetime | None = None
) -> None:
    """Remember that ``username`` signed out: tokens are not renewed until the next login.

    A user who signed in before bindings existed has no row yet: ``current`` (the identity of
    their tokens) binds them now, so the mark has somewhere to live.
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    row = find(db, username)
    if row is None:
        if current is None:
            return
        row = IAMBinding(
            username=username, issuer=current.issuer, subject=current.subject, bound_at=now
        )
        db.add(row)
    row.signed_out_at = now
    db.commit()


def is_signed_out(db: Session, username: str) -> bool:
    row = find(db, username)
    return row is not None and row.signed_out_at is not None


def subject_from_user_info(user_info: Any) -> str | None:
    """The ``sub`` claim if it is a usable identifier (1-255 characters), else ``None``."""
    if not isinstance(user_info, dict):
        return None
    value = user_info.get("sub")
    if not isinstance(value, str) or not value or len(value) > MAX_SUBJECT:
        return None
    return value
