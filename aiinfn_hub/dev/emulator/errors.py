"""API errors answered as Kubernetes ``Status`` objects, worded like kube-apiserver."""

from __future__ import annotations

from typing import Any

from .resources import ResourceType


class ApiError(Exception):
    """An error the API server answers with a ``Status`` body and an HTTP code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The ``Status`` object, as the real API server sends it."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(
            404,
            "NotFound",
            f'{rt.qualified_plural} "{name}" not found',
            details=_details(rt, name),
        )

    @classmethod
    def namespace_not_found(cls, namespace: str) -> ApiError:
        return cls(
            404,
            "NotFound",
            f'namespaces "{namespace}" not found',
            details={"name": namespace, "kind": "namespaces"},
        )

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(
            409,
            "AlreadyExists",
            f'{rt.qualified_plural} "{name}" already exists',
            details=_details(rt, name),
        )

    @classmethod
    def conflict(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rt.qualified_plural} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            details=_details(rt, name),
        )

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
        """422 Invalid; ``causes`` are ``(field, message)`` pairs.

        E.g. ``("spec.containers", "Required value")``.
        """
        text = ", ".join(f"{field}: {msg}" for field, msg in causes)
        details = _details(rt, name)
        details["causes"] = [
            {"reason": "FieldValueInvalid", "message": msg, "field": field} for field, msg in causes
        ]
        return cls(422, "Invalid", f'{rt.kind} "{name}" is invalid: {text}', details=details)

    @classmethod
    def gone(cls, requested: int, oldest: int) -> ApiError:
        return cls(410, "Expired", f"too old resource version: {requested} ({oldest})")

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def forbidden(cls, message: str) -> ApiError:
        return cls(403, "Forbidden", message)

    @classmethod
    def method_not_allowed(
        cls, message: str = "the server does not allow this method on the requested resource"
    ) -> ApiError:
        return cls(405, "MethodNotAllowed", message)

    @classmethod
    def unsupported_media_type(cls, content_type: str) -> ApiError:
        return cls(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml, application/strategic-merge-patch+json "
            f"(got {content_type!r})",
        )

    @classmethod
    def too_large(cls, limit: int) -> ApiError:
        return cls(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")

    @classmethod
    def unsupported_object_media_type(cls, why: str) -> ApiError:
        """What kube-apiserver answers a create or update body it cannot decode."""
        return cls(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            f"application/json, application/yaml, application/vnd.kubernetes.protobuf ({why})",
        )


def _details(rt: ResourceType, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    return details
