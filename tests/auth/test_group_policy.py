"""Groups grant exactly what IAM lists: admin status and allowed projects, through the
authenticator's own group mapping and oauthenticator's admin/allow logic (no hub needed)."""

from __future__ import annotations

from typing import Any

import pytest
from tornado import web

from aiinfn_hub.auth import IAMAuthenticator


async def _model(authenticator: IAMAuthenticator, groups: list[str]) -> dict[str, Any]:
    """The auth model a login with this ``wlcg.groups`` claim gets, groups and admin applied."""
    model = {
        "name": "u",
        "admin": None,
        "auth_state": {"oauth_user": {"sub": "s", "wlcg.groups": groups}},
    }
    result: dict[str, Any] = await authenticator._apply_managed_groups(model)
    return result


def _authenticator(**settings: Any) -> IAMAuthenticator:
    return IAMAuthenticator(admin_groups={"platform-admins"}, allowed_groups={"cms"}, **settings)


async def _allowed(authenticator: IAMAuthenticator, model: dict[str, Any]) -> bool:
    try:
        return bool(await authenticator.check_allowed(model["name"], model))
    except web.HTTPError as error:
        assert error.status_code == 403
        return False


@pytest.mark.parametrize("imply", [False, True])
async def test_a_subgroup_of_the_admin_group_never_makes_an_admin(imply: bool) -> None:
    authenticator = _authenticator(subgroups_imply_parent=imply)
    model = await _model(authenticator, ["/platform-admins/anything"])
    assert model["admin"] is False
    assert model["groups"] == ["platform-admins:anything"]
    assert not await _allowed(authenticator, model)
    listed = await _model(authenticator, ["/platform-admins"])
    assert listed["admin"] is True


async def test_a_project_subgroup_alone_is_not_the_project_by_default() -> None:
    authenticator = _authenticator()
    model = await _model(authenticator, ["/cms/x"])
    assert model["groups"] == ["cms:x"]
    assert not await _allowed(authenticator, model)  # cms is the only allowed group
    assert await _allowed(authenticator, await _model(authenticator, ["/cms", "/cms/x"]))


async def test_with_the_setting_on_a_project_subgroup_counts_as_the_project() -> None:
    authenticator = _authenticator(subgroups_imply_parent=True)
    model = await _model(authenticator, ["/cms/x"])
    assert model["groups"] == ["cms", "cms:x"]
    assert model["admin"] is False
    assert await _allowed(authenticator, model)
