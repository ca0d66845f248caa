"""What every hub service of the platform shares (Bunshin now; accounting and culling later).

- ``web``: the tornado side: HubOAuth with ``SameSite=Lax`` cookies, handlers that know their
  caller (a :class:`~.caller.Caller` value) and defer the XSRF check until they do, JSON errors,
  the security headers, the application and its HTTP server.
- ``pages``: HTML pages that look like the hub's (its stylesheet and navigation bar).
- ``hub_api``: the Hub API with the service's own token.
- ``registration``: adding a service, its custom scopes and roles to a hub configuration.
- ``caller``, ``errors``, ``config_source``, ``bodies``: small values every service passes
  around.

Nothing here knows what a service does: it must not import ``bunshin`` (nor the spawner,
the authenticator or storage).
"""
