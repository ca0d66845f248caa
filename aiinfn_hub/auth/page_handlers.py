"""The hub page of a login refused because the account is in no project.

The OAuth callback redirects here (``IAMCallbackHandler``) instead of answering the refusal
itself: the callback's URL carries a spent OAuth state, so reloading it would only say "OAuth
state missing from cookies", while this page can be reloaded. It tells the user once what
happened, lists the platform's projects and whom to ask, and links to the provider's
end-session endpoint: without ending the IAM session, signing in again would silently reuse
the same account and land here again.
"""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateNotFound
from jupyterhub.handlers import BaseHandler
from tornado import web

from .hub_pages import REFUSAL_COOKIE, contact_href, parse_refusal_cookie

REFUSAL_MAX_AGE_DAYS = 1 / 24  # the page shows a refusal for an hour after it happened


class NotInAProjectHandler(BaseHandler):  # type: ignore[misc]
    """``GET /hub/not-in-a-project``: HTTP 403 with the page; without a recent refusal in the
    browser's signed cookie, the login page (nothing to explain)."""

    async def get(self) -> None:
        refusal = parse_refusal_cookie(
            self.get_secure_cookie(REFUSAL_COOKIE, max_age_days=REFUSAL_MAX_AGE_DAYS)
        )
        if refusal is None:
            self.redirect(self.settings["login_url"])
            return
        username, groups = refusal
        authenticator: Any = self.authenticator
        contact = authenticator.support_contact.strip()
        self.set_status(403)
        # the page must not be cached: it is about one browser's last login
        self.set_header("Cache-Control", "no-store")
        template = "aiinfn-not-in-a-project.html"
        if not _template_exists(self, template):  # configure_hub was not used: the bare message
            error = web.HTTPError(403, reason="Not in a project")
            error.jupyterhub_message = authenticator.custom_403_message  # type: ignore[attr-defined]
            raise error
        html = await self.render_template(
            template,
            refused_user=username,
            refused_groups=groups,
            message=authenticator.custom_403_message,
            projects=authenticator.project_entries(),
            contact=contact,
            contact_href=contact_href(contact),
            platform_name=authenticator.platform_name,
            login_service=authenticator.login_service,
            sign_out_url=await authenticator.end_session_url(),
        )
        self.finish(html)


def _template_exists(handler: BaseHandler, name: str) -> bool:
    try:
        handler.get_template(name)
    except TemplateNotFound:
        return False
    return True
