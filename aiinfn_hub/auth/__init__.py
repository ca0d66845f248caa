"""Login with INDIGO IAM (OpenID Connect): ``IAMAuthenticator``, entry point ``iam``."""

from .authenticator import IAMAuthenticator

__all__ = ["IAMAuthenticator"]
