"""HTML pages of a service that look at home in the hub: its stylesheet, its navigation bar
(home, token, admin, the service, the user and logout) and its dark mode, all served by the
hub under ``{hub_prefix}static/``. Pages work without JavaScript.

A service's templates extend ``hub_page.html`` (blocks ``title``, ``head``, ``main``,
``script``) and are rendered with :func:`hub_page_context` plus their own values.
"""

from __future__ import annotations

from typing import Any

import jinja2

from .caller import Caller
from .errors import ServiceError
from .web import ServiceHandler

TEMPLATES = jinja2.PackageLoader("aiinfn_hub.services", "templates")


def template_environment(*loaders: jinja2.BaseLoader) -> jinja2.Environment:
    """Templates from ``loaders`` (the service's own), then ``hub_page.html``; autoescaped."""
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([*loaders, TEMPLATES]),
        autoescape=jinja2.select_autoescape(["html"]),
    )


class PageHandler(ServiceHandler):
    """An HTML page; a :class:`ServiceError` not handled by the page is its text."""

    def hub_page_context(self, caller: Caller, service_name: str) -> dict[str, Any]:
        """What ``hub_page.html`` needs: the hub's prefix, the service's, the user, the
        XSRF token (for forms and scripts)."""
        return {
            "hub_prefix": self.hub_auth.hub_prefix,
            "service_prefix": self.service_prefix,
            "service_name": service_name,
            "user": caller.name,
            "admin": caller.admin,
            "xsrf": _text(self.xsrf_token),
        }

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ServiceError):
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish(error.message)
            return
        super().write_error(status_code, **kwargs)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
