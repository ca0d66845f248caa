"""Helpers for tests against a MockHub: users in groups, waiting for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from jupyterhub import orm


def add_user(app: Any, name: str, *groups: str) -> Any:
    """A hub user in ``groups`` (created as needed)."""
    orm_user = orm.User(name=name)
    app.db.add(orm_user)
    for group_name in groups:
        group = orm.Group.find(app.db, group_name) or orm.Group(name=group_name)
        app.db.add(group)
        orm_user.groups.append(group)
    app.db.commit()
    return app.users[orm_user.id]


async def until(predicate: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)
