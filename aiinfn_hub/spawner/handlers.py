"""``GET /hub/api/aiinfn/accelerators``: live availability of the models the user may use."""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.apihandlers import APIHandler
from tornado import web


class AcceleratorsHandler(APIHandler):  # type: ignore[misc]
    """Any logged-in user: the models they may use, with free/total per server.

    Served from the informer cache of the hub process (no cluster listing per request), so the
    spawn form's script can poll it every few seconds.
    """

    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        spawner: Any = getattr(user, "spawner", None)
        if spawner is None or not hasattr(spawner, "availability"):
            raise web.HTTPError(404, "the hub's spawner is not AIInfnSpawner")
        models = await spawner.availability()
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps([m.to_json() for m in models]))


def extra_handlers() -> list[tuple[str, type[APIHandler]]]:
    """Handlers to add to ``c.JupyterHub.extra_handlers``."""
    return [(r"/api/aiinfn/accelerators", AcceleratorsHandler)]
