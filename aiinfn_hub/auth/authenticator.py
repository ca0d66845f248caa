"""``IAMAuthenticator``: INDIGO IAM (OpenID Connect) login with groups as research projects.

Registered as the ``jupyterhub.authenticators`` entry point ``iam``
(``c.JupyterHub.authenticator_class = "iam"``). Endpoints come from the issuer's discovery
document; tokens stay in encrypted ``auth_state`` and are renewed before they expire; an optional
RFC 8693 token exchange gives the storage mounts a narrower token. No token, code or client
secret is ever logged or shown: errors name the step and the provider's error code only.

Each hub user is bound to the IAM identity (issuer + ``sub``) of its first login
(:mod:`.bindings`); logout revokes the refresh token at the provider and forgets the tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import TemplateNotFound
from jupyterhub.crypto import CryptKeeper
from jupyterhub.utils import url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler, OAuthLogoutHandler
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Integer, List, Set, Unicode, default

from ..config import config_provider
from . import bindings, tokens
from .claims import ClaimError, groups_from_claim, username_from_claims
from .discovery import DiscoveryError, ProviderEndpoints, discovery_url, parse_discovery
from .hub_pages import (
    REFUSAL_COOKIE,
    REFUSAL_PATH,
    ProjectEntry,
    ServerSummary,
    accelerator_names,
    project_entries,
    refusal_cookie_value,
    running_servers,
)
from .page_handlers import NotInAProjectHandler
from .projects import apply_group_properties, project_group_properties


class ProviderUnavailable(web.HTTPError):
    """The provider cannot be reached or answered with a server error (HTTP 503)."""

    def __init__(self, issuer: str, what: str) -> None:
        message = (
            f"The identity provider ({issuer}) cannot be reached right now ({what}). "
            "Try again in a few minutes; if it persists, tell the platform administrators."
        )
        # a short heading (the reason), so the page says the message once, below it
        super().__init__(
            503, message.replace("%", "%%"), reason="The identity provider is unavailable"
        )
        self.jupyterhub_message = message  # shown on the error page


class TokenRefused(Exception):
    """The token endpoint refused a grant (e.g. ``invalid_grant`` for a revoked refresh token)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _user_error(status: int, message: str) -> web.HTTPError:
    # the reason is the page's heading: short, so the message is said once, below it
    error = web.HTTPError(status, message.replace("%", "%%"), reason=_REASONS.get(status))
    error.jupyterhub_message = message  # type: ignore[attr-defined]
    return error


_REASONS = {403: "Sign-in refused", 502: "The identity provider answered oddly"}


class NotInAProject(web.HTTPError):
    """A login refused because none of the account's IAM groups is a project (HTTP 403).

    The callback handler turns it into a redirect to the refusal page, which can be reloaded
    (the callback URL cannot: its OAuth state is spent) and offers to end the IAM session.
    """

    def __init__(self, username: str, groups: set[str], message: str) -> None:
        super().__init__(403, message.replace("%", "%%"), reason="Not in a project")
        self.jupyterhub_message = message
        self.username = username
        self.groups = groups


class IAMLoginHandler(OAuthLoginHandler):  # type: ignore[misc]
    """Resolves the provider's endpoints (discovery) before redirecting to it."""

    async def get(self) -> None:
        await self.authenticator.endpoints()
        super().get()


class IAMCallbackHandler(OAuthCallbackHandler):  # type: ignore[misc]
    """After a login, makes sure the projects exist as groups with up-to-date properties."""

    async def get(self) -> None:
        try:
            await super().get()
        except NotInAProject as refusal:
            self.set_secure_cookie(
                REFUSAL_COOKIE,
                refusal_cookie_value(refusal.username, refusal.groups),
                expires_days=None,  # a browser session at most; the page reads it for an hour
                path=self.hub.base_url,
                httponly=True,
                secure=self.request.protocol == "https",
                samesite="Lax",
            )
            self.redirect(url_path_join(self.hub.base_url, REFUSAL_PATH.lstrip("/")))
            return
        self.authenticator.sync_project_groups(self.db)


class IAMLogoutHandler(OAuthLogoutHandler):  # type: ignore[misc]
    """Ends the hub session, revokes the user's refresh token at the provider and forgets the
    tokens, then sends the browser to the provider's end-session endpoint.

    Logging out does not stop servers (unless ``JupyterHub.shutdown_on_logout``), so a user
    whose running server holds an accelerator is first asked whether to stop it: the GPU stays
    allocated to them, and away from everyone else, until the server stops.
    """

    async def get(self) -> None:
        user = self.current_user
        if user is not None and not self.shutdown_on_logout:
            held = [s for s in self.authenticator.running_servers(user) if s.accelerator]
            if held:
                try:
                    html = await self.render_template(
                        "aiinfn-logout.html", servers=held, home_url=self.hub.base_url + "home"
                    )
                except TemplateNotFound:  # pages not installed: configure_hub was not used
                    self.log.warning("aiinfn-logout.html not found: logging out without asking")
                else:
                    self.finish(html)
                    return
        await super().get()

    async def post(self) -> None:
        """The confirmation's answer: stop the servers (``stop=yes``) or keep them, then log out."""
        user = self.current_user
        if user is not None and self.get_body_argument("stop", "") == "yes":
            await self._shutdown_servers(user)
        await super().get()

    async def handle_logout(self) -> None:
        await super().handle_logout()
        # the hub clears its cached user only after this method: still the one logging out
        user = self.current_user
        if user is not None:
            await self.authenticator.sign_out(user)

    async def render_logout_page(self) -> None:
        self.clear_cookie(REFUSAL_COOKIE, path=self.hub.base_url)
        url = await self.authenticator.end_session_url()
        if url:
            self.redirect(url)
            return
        await super().render_logout_page()


class IAMAuthenticator(GenericOAuthenticator):  # type: ignore[misc]
    """Log in with INDIGO IAM; ``wlcg.groups`` become hub groups (projects)."""

    login_handler = IAMLoginHandler
    callback_handler = IAMCallbackHandler
    logout_handler = IAMLogoutHandler

    issuer = Unicode(
        "",
        config=True,
        help="""Issuer URL of the IAM instance, e.g. `https://iam.example.infn.it/`. The
        authorize, token, userinfo, end-session and JWKS endpoints are read from
        `<issuer>/.well-known/openid-configuration` at start-up and again after a failure.
        Required.""",
    )
    client_id_file = Unicode(
        "",
        config=True,
        help="""File holding the OAuth client id (e.g. a mounted Kubernetes Secret key).
        Used when `client_id` is not set. Surrounding whitespace is ignored.""",
    )
    client_secret_file = Unicode(
        "",
        config=True,
        help="""File holding the OAuth client secret (e.g. a mounted Kubernetes Secret key),
        the way to keep it out of the hub's configuration and environment. Used when
        `client_secret` is not set. Never logged.""",
    )
    groups_claim = Unicode(
        "wlcg.groups",
        config=True,
        help="""Userinfo claim listing the user's groups as paths (`/cms`, `/cms/analysis`).
        The claim name is taken literally (it may contain dots). See `subgroup_separator`.""",
    )
    subgroup_separator = Unicode(
        ":",
        config=True,
        help="""Joins the parts of a nested IAM group into one hub group name:
        `/cms/analysis` becomes `cms:analysis`. `/` cannot be used, hub group names appear in
        REST API paths. Whether `/cms/analysis` also gives `cms` is `subgroups_imply_parent`.""",
    )
    subgroups_imply_parent = Bool(
        False,
        config=True,
        help="""Whether membership of a subgroup counts as membership of its parents: with it
        on, `/cms/analysis` gives both `cms:analysis` and `cms`, so a member of a project's
        subgroup is a member of the project (its allowances, storage and `allowed_groups`).
        Off (the default), a user gets exactly the groups IAM lists: INDIGO IAM lists every
        group a user is in, and a project's group manager may add people to a subgroup
        without meaning to give them the project. `admin_groups` always match exactly,
        whatever this setting: `/platform-admins/x` never makes its member a hub admin, only
        an entry `/platform-admins` does.""",
    )
    rebind_users = Set(
        Unicode(),
        config=True,
        help="""Hub usernames whose IAM binding is replaced at their next login. Every hub
        user is bound to the IAM identity (issuer and `sub` claim) of its first login, kept
        in the table `aiinfn_iam_bindings` of the hub database; a later login with the same
        username but another identity (an IAM account deleted and registered again, or
        another account renamed to that username) is refused with a 403 page telling the user
        to contact the administrators, and a warning naming the username and both subjects
        is logged. When the change is legitimate, list the username here and restart the hub:
        the next login as that user re-binds it (logged as a warning). Remove the name once
        done: while it is listed, a login with yet another identity would re-bind again.
        Deleting the hub user does not remove its binding (the person's storage outlives the
        hub user), and changing `issuer` makes every binding differ: list the users to move.
        Names are normalized as the hub does (lower case).""",
    )
    token_refresh_margin = Integer(
        120,
        config=True,
        help="""Renew the access token (and the storage token) when it expires within this
        many seconds. Renewal happens when the hub refreshes the user (see `auth_refresh_age`)
        and, for users with running servers, at every spawner poll.""",
    )
    provider_retry_interval = Float(
        15.0,
        config=True,
        help="""After the provider failed to answer a token renewal (unreachable, timed out, a
        5xx), wait this many seconds before asking it again. Meanwhile users keep their
        sessions, even with expired tokens (an IAM outage alone logs nobody out) and pages do
        not wait on a provider that is down; renewals resume on their own once it is back.""",
    )
    end_session_logout = Bool(
        True,
        config=True,
        help="""On logout, after ending the hub session, send the browser to the provider's
        end-session endpoint so the IAM session ends too. Ignored when `logout_redirect_url`
        is set.""",
    )
    post_logout_redirect_url = Unicode(
        "",
        config=True,
        help="""Where the provider sends the browser after its logout (must be registered with
        the client in IAM), e.g. `https://hub.example.infn.it/hub/login`. Empty: the
        provider's own page.""",
    )
    storage_token_audience = Unicode(
        "",
        config=True,
        help="""Audience of the token given to storage mounts (e.g. `object-store`). When set,
        the hub exchanges the login token (OAuth 2.0 Token Exchange, RFC 8693, supported by
        INDIGO IAM) for a token restricted to this audience and `storage_token_scopes`, and
        only that narrower token is written to the user's token Secret. Default: the
        platform configuration's `storage.buckets.tokenAudience`. Empty: the login access
        token itself is used, so the object store receives a token good for everything the
        login token is (`aiinfn-hub check-config` warns).""",
    )
    storage_token_scopes = List(
        Unicode(),
        config=True,
        help="""Scopes requested for the storage token, e.g. `["storage.read:/",
        "storage.modify:/"]`. Empty: the provider's default for the audience.""",
    )
    platform_config_file = Unicode(
        "",
        config=True,
        help="""Path of the platform configuration YAML. Its projects are created as hub
        groups, with their settings (display name, limits, storage) as group properties, and
        are the default `allowed_groups`. Empty: no project groups are managed.""",
    )
    http_timeout = Float(
        10.0,
        config=True,
        help="Seconds to wait for any request to the provider.",
    )
    platform_name = Unicode(
        "AI_INFN platform",
        config=True,
        help="""Name of the platform, the heading of the login page and the name the "not in
        a project" page uses, e.g. `AI_INFN platform`. Plain text (HTML is escaped). Default
        `AI_INFN platform`.""",
    )
    platform_description = Unicode(
        "Jupyter notebooks and batch jobs on GPUs, GPU slices and FPGAs, for machine learning "
        "in fundamental science. For members of the research projects of this platform: sign "
        "in with your INDIGO IAM account.",
        config=True,
        help="""What the platform is for and who may use it, shown under `platform_name` on
        the login page. Plain text (HTML is escaped); empty: no description. The default
        describes a GPU platform for INFN research projects.""",
    )
    platform_logo_url = Unicode(
        "",
        config=True,
        help="""Address of an image shown above `platform_name` on the login page, e.g.
        `https://www.infn.it/logo.png` or a path the hub serves (`/hub/logo` is the image of
        `JupyterHub.logo_file`, also the logo of the page's header). Its alternative text is
        `platform_name`. Empty (the default): no image on the login page but the header's.""",
    )
    support_contact = Unicode(
        "",
        config=True,
        help="""Whom people should ask to be added to a project, shown on the page of a login
        refused because the account is in no project: an e-mail address (shown as a mailto:
        link), a web address (a link) or any text (e.g. `your group leader or
        ai-infn@lists.infn.it`). Empty (the default): "the platform administrators".""",
    )

    @default("login_service")
    def _login_service_default(self) -> str:
        return "INDIGO IAM"

    @default("scope")
    def _scope_default(self) -> list[str]:
        return ["openid", "profile", "email", "offline_access", "wlcg.groups"]

    @default("username_claim")
    def _username_claim_default(self) -> str:
        return "preferred_username"

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    @default("enable_auth_state")
    def _enable_auth_state_default(self) -> bool:
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self) -> bool:
        return True

    @default("auth_refresh_age")
    def _auth_refresh_age_default(self) -> int:
        return 60

    @default("storage_token_audience")
    def _storage_token_audience_default(self) -> str:
        if not self.platform_config_file:
            return ""
        buckets = config_provider(self.platform_config_file).current().storage.buckets
        return buckets.token_audience if buckets is not None else ""

    @default("allowed_groups")
    def _allowed_groups_default(self) -> set[str]:
        """Members of any configured project may log in, unless allowed_groups says otherwise."""
        if not self.platform_config_file:
            return set()
        return set(config_provider(self.platform_config_file).current().projects)

    @default("client_id")
    def _client_id_default(self) -> str:
        return _read_file(self.client_id_file) if self.client_id_file else ""

    @default("client_secret")
    def _client_secret_default(self) -> str:
        return _read_file(self.client_secret_file) if self.client_secret_file else ""

    @default("custom_403_message")
    def _custom_403_message_default(self) -> str:
        return (
            "Your IAM account is not in a research project enabled on this hub. Ask your "
            "project's group manager in IAM to add you to the project's group, then sign in "
            "again."
        )

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        """The OAuth handlers and the page of logins refused for being in no project."""
        handlers: list[tuple[str, Any]] = super().get_handlers(app)
        return [*handlers, (REFUSAL_PATH, NotInAProjectHandler)]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._endpoints: ProviderEndpoints | None = None
        self._discovery_lock = asyncio.Lock()
        self._refresh_locks: dict[str, asyncio.Lock] = {}
        # user -> fingerprint of the refresh token the provider refused
        self._refused: dict[str, str] = {}
        # until when (monotonic) renewals are not tried: the provider just failed to answer
        self._provider_down_until = 0.0
        self._project_groups: dict[str, dict[str, Any]] | None = None
        self._bindings_table_checked = False  # created in the hub database at first use
        if _in_a_hub(self.parent):
            # before the hub's own auth_state check, so the message says what to do
            self._refuse_bad_config()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.issuer:
            self._startup = loop.create_task(self._startup_discovery())

    # -- configuration checks -------------------------------------------------------------
    def check_allow_config(self) -> None:
        """Refuse to start without the settings login cannot work without."""
        super().check_allow_config()
        self._refuse_bad_config()

    def _refuse_bad_config(self) -> None:
        problems = self.config_problems()
        if problems:
            for problem in problems:
                self.log.critical("IAMAuthenticator: %s", problem)
            raise SystemExit("IAMAuthenticator cannot start:\n  " + "\n  ".join(problems))

    def config_problems(self) -> list[str]:
        problems = []
        if not self.issuer:
            problems.append("IAMAuthenticator.issuer is not set: give the IAM issuer URL")
        if not self.client_id:
            problems.append("no client id: set IAMAuthenticator.client_id or client_id_file")
        if not self.client_secret:
            problems.append(
                "no client secret: set IAMAuthenticator.client_secret_file (or client_secret)"
            )
        if not self.enable_auth_state:
            problems.append(
                "enable_auth_state is off, but tokens must be kept in encrypted auth_state: "
                "remove the setting that turns it off"
            )
        elif not CryptKeeper.instance().keys:
            problems.append(
                "JUPYTERHUB_CRYPT_KEY is not set, so tokens cannot be encrypted. Create a key "
                "with `openssl rand -hex 32` and put it in the hub's environment as "
                "JUPYTERHUB_CRYPT_KEY (Zero to JupyterHub sets hub.config.CryptKeeper.keys "
                "for you)"
            )
        if "/" in self.subgroup_separator or not self.subgroup_separator:
            problems.append("IAMAuthenticator.subgroup_separator must be non-empty, without '/'")
        return problems

    # -- discovery ------------------------------------------------------------------------
    async def _startup_discovery(self) -> None:
        # a failure is logged by endpoints() and retried at the next login
        with contextlib.suppress(web.HTTPError):
            await self.endpoints()
        db = getattr(self.parent, "db", None)
        if db is not None:
            self.sync_project_groups(db)

    async def endpoints(self) -> ProviderEndpoints:
        """The provider's endpoints, fetched once and again after a failure."""
        if self._endpoints is not None:
            return self._endpoints
        async with self._discovery_lock:
            if self._endpoints is None:
                self._endpoints = await self._discover()
        return self._endpoints

    async def _discover(self) -> ProviderEndpoints:
        url = discovery_url(self.issuer)
        try:
            response = await self.http_client.fetch(
                HTTPRequest(url, request_timeout=self.http_timeout, **self._request_kwargs()),
                raise_error=False,
            )
        except (OSError, HTTPClientError) as exc:  # curl (the hub image) raises 599 errors
            self.log.error("OpenID discovery at %s failed: %s", url, exc)
            raise ProviderUnavailable(self.issuer, "discovery failed") from None
        if response.code != 200:
            self.log.error("OpenID discovery at %s answered HTTP %s", url, response.code)
            raise ProviderUnavailable(self.issuer, f"discovery answered HTTP {response.code}")
        try:
            endpoints = parse_discovery(json.loads(response.body or b"null"), self.issuer)
        except (ValueError, DiscoveryError) as exc:
            self.log.error("OpenID discovery at %s is unusable: %s", url, exc)
            raise ProviderUnavailable(self.issuer, "its discovery document is unusable") from None
        if self.storage_token_audience and not endpoints.supports_token_exchange:
            self.log.error(
                "storage_token_audience is set but %s does not list the token exchange grant; "
                "storage tokens will not be issued",
                url,
            )
        # the base class reads these traits; keep them in step with the provider
        self.authorize_url = endpoints.authorization_endpoint
        self.token_url = endpoints.token_endpoint
        self.userdata_url = endpoints.userinfo_endpoint
        self.log.info("OpenID provider %s: endpoints discovered", endpoints.issuer)
        return endpoints

    def _request_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.http_request_kwargs)
        kwargs.setdefault("validate_cert", self.validate_server_cert)
        return kwargs

    # -- token endpoint -------------------------------------------------------------------
    async def _token_request(self, params: dict[str, str], what: str) -> dict[str, Any]:
        """POST to the token endpoint; nothing of the request or answer is logged but codes."""
        endpoints = await self.endpoints()
        if not self.basic_auth:
            params = {**params, "client_id": self.client_id, "client_secret": self.client_secret}
        request = HTTPRequest(
            endpoints.token_endpoint,
            method="POST",
            headers=self.build_token_info_request_headers(),
            body=urlencode(params),
            request_timeout=self.http_timeout,
            **self._request_kwargs(),
        )
        try:
            response = await self.http_client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:  # unreachable, or timed out (599)
            self._endpoints = None  # rediscover: the provider may have moved
            self.log.error("%s: token endpoint unreachable: %s", what, exc)
            raise ProviderUnavailable(self.issuer, f"{what} failed") from None
        if response.code >= 500 or response.code == 599:
            self._endpoints = None
            self.log.error("%s: token endpoint answered HTTP %s", what, response.code)
            raise ProviderUnavailable(self.issuer, f"{what} failed")
        try:
            body = json.loads(response.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.log.error("%s: token endpoint answered HTTP %s without JSON", what, response.code)
            raise ProviderUnavailable(self.issuer, f"{what} got a malformed answer")
        if response.code != 200 or "access_token" not in body:
            error = str(body.get("error") or f"HTTP {response.code}")[:100]
            self.log.info("%s: refused by the provider (%s)", what, error)
            raise TokenRefused(error)
        return body

    async def get_token_info(self, handler: Any, params: dict[str, str]) -> dict[str, Any]:
        """The login's code-for-token exchange, with errors fit to show the user."""
        try:
            return await self._token_request(dict(params), "sign-in")
        except TokenRefused as exc:
            raise _user_error(
                403,
                f"IAM refused the sign-in ({exc.error}). Start again from the hub's login page.",
            ) from None

    def build_access_tokens_request_params(self, handler: Any, data: Any = None) -> dict[str, str]:
        params: dict[str, str] = super().build_access_tokens_request_params(handler, data)
        if self.basic_auth:  # the secret goes in the Authorization header only
            params.pop("client_id", None)
            params.pop("client_secret", None)
        return params

    async def token_to_user(self, token_info: dict[str, Any]) -> dict[str, Any]:
        """Userinfo for an access token; a malformed answer is a clear 502."""
        endpoints = await self.endpoints()
        request = HTTPRequest(
            endpoints.userinfo_endpoint,
            headers=self.build_userdata_request_headers(
                token_info["access_token"], token_info.get("token_type", "Bearer")
            ),
            request_timeout=self.http_timeout,
            **self._request_kwargs(),
        )
        try:
            response = await self.http_client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:  # curl (the hub image) raises 599 errors
            self._endpoints = None
            self.log.error("userinfo request failed: %s", exc)
            raise ProviderUnavailable(self.issuer, "reading your account failed") from None
        if response.code in (401, 403):
            raise HTTPClientError(response.code, "userinfo refused the access token")
        if response.code != 200:
            self.log.error("userinfo answered HTTP %s", response.code)
            raise ProviderUnavailable(self.issuer, "reading your account failed")
        try:
            user_info = json.loads(response.body or b"null")
        except ValueError:
            user_info = None
        if not isinstance(user_info, dict):
            self.log.error("userinfo answered something that is not a JSON object")
            raise _user_error(
                502,
                "The identity provider sent malformed account information. Try again later; "
                "if it persists, tell the platform administrators.",
            )
        return user_info

    # -- claims -----------------------------------------------------------------------------
    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        claim = self.username_claim
        if callable(claim):
            user_info = {"username": claim(user_info)}
            claim = "username"
        try:
            return username_from_claims(user_info, claim)
        except ClaimError as exc:
            self.log.warning("Refusing a login: %s", exc)
            raise _user_error(exc.status, f"Cannot sign you in: {exc}") from None

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        user_info = auth_state.get(self.user_auth_state_key) or {}
        try:
            groups, skipped = groups_from_claim(
                user_info.get(self.groups_claim),
                self.subgroup_separator,
                imply_parents=self.subgroups_imply_parent,
                exact=set(self.admin_groups),
            )
        except ClaimError as exc:
            self.log.warning("Refusing a login: %s", exc)
            raise _user_error(exc.status, f"Cannot sign you in: {exc}.") from None
        if skipped:
            self.log.warning("Ignored IAM groups with unusable names: %s", skipped[:10])
        return groups

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        if await super().check_allowed(username, auth_model):
            return True
        model = auth_model or {}
        self.log.info("Refusing a login as %s: none of its IAM groups is allowed", username)
        # the refused login's refresh token would stay valid at the provider for nothing
        refresh_token = (model.get("auth_state") or {}).get("refresh_token")
        if isinstance(refresh_token, str) and refresh_token:
            await self._revoke(refresh_token, username)
        raise NotInAProject(username, set(model.get("groups") or ()), self.custom_403_message)

    # -- binding to the IAM identity ------------------------------------------------------------
    async def run_post_auth_hook(self, handler: Any, auth_model: dict[str, Any]) -> Any:
        """After the allow checks (and any configured hook), bind the login to its identity.

        Runs before the hub writes the new ``auth_state``, so the previous login's claims are
        still readable for users who signed in before bindings were kept.
        """
        auth_model = await super().run_post_auth_hook(handler, auth_model)
        await self.bind_identity(handler.db, auth_model, handler.find_user)
        return auth_model

    def _bindings_db(self, db: Any) -> Any:
        if not self._bindings_table_checked:
            bindings.ensure_table(db)
            self._bindings_table_checked = True
        return db

    async def bind_identity(self, db: Any, auth_model: dict[str, Any], find_user: Any) -> None:
        """Refuse (403) a login whose IAM identity is not the one the hub user is bound to;
        record the identity at the first login and when admins asked for a re-binding."""
        username = auth_model["name"]
        user_info = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key)
        subject = bindings.subject_from_user_info(user_info)
        if subject is None:
            self.log.warning("Refusing a login as %s: no usable 'sub' claim in userinfo", username)
            raise _user_error(
                502,
                "The identity provider did not say which account you are (no 'sub' claim). "
                "Try again later; if it persists, tell the platform administrators.",
            )
        login = bindings.identity(self.issuer, subject)
        db = self._bindings_db(db)
        recorded = bindings.recorded_identity(bindings.find(db, username))
        if recorded is None:
            legacy = await self._identity_of_last_login(find_user(username))
            # read again after the await: a concurrent first login may have bound the name
            # meanwhile; from here to the commit nothing awaits, so the decision holds
            recorded = bindings.recorded_identity(bindings.find(db, username)) or legacy
        rebind = username in {self.normalize_username(name) for name in self.rebind_users}
        decision = bindings.decide(recorded, login, rebind)
        if decision is bindings.Decision.REFUSE:
            assert recorded is not None
            self.log.warning(
                "Refusing a login as %s: the hub user is bound to IAM subject %r (issuer %s), "
                "this login is subject %r (issuer %s). If the IAM account was legitimately "
                "recreated or renamed, add %r to IAMAuthenticator.rebind_users",
                username,
                recorded.subject,
                recorded.issuer,
                login.subject,
                login.issuer,
                username,
            )
            raise _user_error(
                403,
                f"The hub account {username!r} belongs to another IAM identity than the one "
                "you signed in with (your IAM account may have been recreated or renamed). "
                "Contact the platform administrators: they can move the hub account to your "
                "IAM account.",
            )
        if decision is bindings.Decision.REBIND:
            assert recorded is not None
            self.log.warning(
                "Re-binding %s from IAM subject %r (issuer %s) to %r (issuer %s), as "
                "IAMAuthenticator.rebind_users asks",
                username,
                recorded.subject,
                recorded.issuer,
                login.subject,
                login.issuer,
            )
        elif decision is bindings.Decision.BIND:
            self.log.info("Bound %s to IAM subject %r of %s", username, login.subject, login.issuer)
        bindings.record(db, username, login)

    async def _identity_of_last_login(self, user: Any) -> bindings.Identity | None:
        """The identity in an existing user's ``auth_state`` (from before bindings were kept)."""
        if user is None:
            return None
        try:
            state = await user.get_auth_state()
        except Exception as exc:  # an unreadable auth_state (e.g. a rotated key) binds anew
            self.log.warning("auth_state of %s unreadable (%s); binding anew", user.name, exc)
            return None
        subject = bindings.subject_from_user_info((state or {}).get(self.user_auth_state_key))
        return bindings.identity(self.issuer, subject) if subject else None

    # -- auth_state ---------------------------------------------------------------------------
    async def build_auth_state_dict(
        self, token_info: dict[str, Any], user_info: dict[str, Any]
    ) -> dict[str, Any]:
        state: dict[str, Any] = super().build_auth_state_dict(token_info, user_info)
        now = time.time()
        state["expires_at"] = tokens.expires_at(token_info, now)
        state["storage_token"] = await self._storage_token(token_info["access_token"], now)
        return state

    async def _storage_token(self, access_token: str, now: float) -> dict[str, Any] | None:
        """The narrower storage token by token exchange, or ``None`` if not configured/failed."""
        if not self.storage_token_audience:
            return None
        endpoints = await self.endpoints()
        if not endpoints.supports_token_exchange:
            return None
        params = tokens.exchange_params(
            access_token, self.storage_token_audience, list(self.storage_token_scopes)
        )
        try:
            response = await self._token_request(params, "storage token exchange")
        except (TokenRefused, web.HTTPError):
            self.log.warning("No storage token: the token exchange failed")
            return None
        return tokens.storage_token_entry(response, self.storage_token_audience, now)

    def storage_token(self, auth_state: dict[str, Any] | None) -> tuple[str, float] | None:
        """The token for storage mounts and its expiry: the exchanged one when configured."""
        if not auth_state:
            return None
        if self.storage_token_audience:
            entry = auth_state.get("storage_token")
            if not isinstance(entry, dict) or not entry.get("access_token"):
                return None
            return entry["access_token"], float(entry.get("expires_at") or 0)
        token = auth_state.get("access_token")
        if not token:
            return None
        return token, float(auth_state.get("expires_at") or 0)

    # -- refresh --------------------------------------------------------------------------------
    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """Renew tokens that expire within ``token_refresh_margin``.

        Returns ``True`` when nothing needs to change, a fresh auth model after a renewal, or
        ``False`` (log in again) when the refresh token is refused or the tokens expired. The
        refresh token rotates: renewals of one user are serialized and the new state is saved
        before the lock is released, so a concurrent renewal never replays a spent token.
        """
        lock = self._refresh_locks.setdefault(user.name, asyncio.Lock())
        async with lock:
            state = await user.get_auth_state()
            if not state:
                return False
            if bindings.is_signed_out(self._bindings_db(user.db), user.name):
                if tokens.secret_values(state):
                    # written back by a renewal that was under way at logout
                    await user.save_auth_state(tokens.without_tokens(state))
                return False
            if not tokens.needs_refresh(state, self.token_refresh_margin):
                return True
            refresh_token = state.get("refresh_token")
            if not refresh_token:
                return not tokens.is_expired(state)
            if self._refused.get(user.name) == tokens.fingerprint(refresh_token):
                return False  # refused before: do not ask the provider again until a new login
            if time.monotonic() < self._provider_down_until:
                return True  # it failed moments ago: keep the session, ask again later
            try:
                token_info = await self._token_request(
                    tokens.refresh_params(refresh_token), f"token refresh of {user.name}"
                )
            except TokenRefused:
                self.log.info("Refresh refused for %s: they must sign in again", user.name)
                self._refused[user.name] = tokens.fingerprint(refresh_token)
                return False
            except web.HTTPError:  # provider unavailable: an outage alone logs nobody out
                self._provider_down_until = time.monotonic() + self.provider_retry_interval
                self.log.warning(
                    "IAM did not answer the renewal for %s: sessions are kept, renewals "
                    "retried in %.0f s",
                    user.name,
                    self.provider_retry_interval,
                )
                return True
            token_info.setdefault("refresh_token", refresh_token)
            try:
                auth_model = await self._token_to_auth_model(token_info)
            except (web.HTTPError, HTTPClientError) as exc:
                self.log.info("Renewed tokens of %s are unusable (%s)", user.name, exc)
                return False
            if auth_model["name"] != user.name or self._subject(
                auth_model["auth_state"]
            ) != self._subject(state):
                self.log.warning("Refresh for %s returned another account", user.name)
                return False
            await user.save_auth_state(auth_model["auth_state"])
            self.log.info("Renewed the tokens of %s", user.name)
            return auth_model

    def _subject(self, auth_state: dict[str, Any]) -> str | None:
        return bindings.subject_from_user_info(auth_state.get(self.user_auth_state_key))

    # -- logout ---------------------------------------------------------------------------------
    async def sign_out(self, user: Any) -> None:
        """Forget the user's tokens, stop their renewals and revoke the refresh token.

        The tokens are dropped under the user's renewal lock (a renewal under way finishes
        first, and the newest refresh token is the one revoked), and the signed-out mark keeps
        renewals off until the next login. A running server keeps its token Secret: it works
        as long as the already-issued token does. A provider that is down or slow never
        prevents the logout: each request to it gives up after `http_timeout` (logged).
        """
        lock = self._refresh_locks.setdefault(user.name, asyncio.Lock())
        async with lock:
            try:
                state = await user.get_auth_state() or {}
            except Exception as exc:
                self.log.warning("auth_state of %s unreadable at logout (%s)", user.name, exc)
                state = {}
            subject = self._subject(state)
            current = bindings.identity(self.issuer, subject) if subject else None
            bindings.mark_signed_out(self._bindings_db(user.db), user.name, current)
            refresh_token = state.get("refresh_token")
            if state:
                await user.save_auth_state(tokens.without_tokens(state))
        self._refused.pop(user.name, None)
        self.log.info("Tokens of %s forgotten at logout", user.name)
        if isinstance(refresh_token, str) and refresh_token:
            await self._revoke(refresh_token, user.name)

    async def _revoke(self, refresh_token: str, username: str) -> None:
        """RFC 7009 revocation, client-authenticated as at the token endpoint; never raises."""
        what = f"revocation of the refresh token of {username}"
        try:
            endpoints = await self.endpoints()
        except web.HTTPError:
            self.log.warning("%s skipped: the provider is unreachable", what)
            return
        if not endpoints.revocation_endpoint:
            self.log.warning(
                "%s skipped: the provider has no revocation endpoint; the token stays valid "
                "until it expires",
                what,
            )
            return
        params = tokens.revocation_params(refresh_token)
        if not self.basic_auth:
            params = {**params, "client_id": self.client_id, "client_secret": self.client_secret}
        request = HTTPRequest(
            endpoints.revocation_endpoint,
            method="POST",
            headers=self.build_token_info_request_headers(),
            body=urlencode(params),
            connect_timeout=self.http_timeout,
            request_timeout=self.http_timeout,
            **self._request_kwargs(),
        )
        try:
            response = await asyncio.wait_for(
                self.http_client.fetch(request, raise_error=False), self.http_timeout + 1
            )
        except (OSError, TimeoutError, HTTPClientError) as exc:  # down, refused, timed out
            self.log.warning("%s failed: %s", what, type(exc).__name__)
            return
        if response.code == 200:
            self.log.info("Revoked the refresh token of %s at the provider", username)
            return
        try:
            body = json.loads(response.body or b"null")
        except ValueError:
            body = None
        error = str(body.get("error"))[:100] if isinstance(body, dict) else ""
        self.log.warning("%s: the provider answered HTTP %s %s", what, response.code, error)

    async def end_session_url(self) -> str:
        """Where to send the browser after the hub's logout ("" for the hub's own page)."""
        if self.logout_redirect_url:
            return str(self.logout_redirect_url)
        if not self.end_session_logout:
            return ""
        try:
            endpoints = await self.endpoints()
        except web.HTTPError:
            return ""
        if not endpoints.end_session_endpoint:
            return ""
        params = {"client_id": self.client_id}
        if self.post_logout_redirect_url:
            params["post_logout_redirect_uri"] = self.post_logout_redirect_url
        return f"{endpoints.end_session_endpoint}?{urlencode(params)}"

    # -- what the hub's own pages show ------------------------------------------------------------
    def running_servers(self, user: Any) -> list[ServerSummary]:
        """Summaries of the user's running servers (what each holds, since when)."""
        names = accelerator_names(self._config()) if self.platform_config_file else {}
        return running_servers(user, names)

    def project_entries(self) -> list[ProjectEntry]:
        """The platform's projects, for the page of people who are in none."""
        return project_entries(self._config()) if self.platform_config_file else []

    def _config(self) -> Any:
        return config_provider(self.platform_config_file).current()

    # -- projects ---------------------------------------------------------------------------------
    def sync_project_groups(self, db: Any) -> None:
        """Create the platform's projects as hub groups and keep their properties current."""
        if not self.platform_config_file:
            return
        if self._project_groups is None:
            self._project_groups = project_group_properties(
                config_provider(self.platform_config_file).current()
            )
        changed = apply_group_properties(db, self._project_groups)
        if changed:
            self.log.info("Project groups created or updated: %s", ", ".join(changed))


def _in_a_hub(parent: Any) -> bool:
    from jupyterhub.app import JupyterHub

    return isinstance(parent, JupyterHub)


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise SystemExit(f"IAMAuthenticator: cannot read {path}: {exc.strerror}") from None
