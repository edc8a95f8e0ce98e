"""Kubernetes `Status` errors raised by the sandbox API server."""

from __future__ import annotations

from canary.core.objects import Obj


class ApiError(Exception):
    """An error the API server answers with a `Status` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified_resource(group: str, plural: str) -> str:
    """`rollouts.canary.dev`, or just `services` for the core group."""
    return f"{plural}.{group}" if group else plural


def _details(group: str, plural: str, name: str) -> Obj:
    return {"name": name, "group": group, "kind": plural}


def not_found(group: str, plural: str, name: str) -> ApiError:
    message = f'{qualified_resource(group, plural)} "{name}" not found'
    return ApiError(404, "NotFound", message, _details(group, plural, name))


def already_exists(group: str, plural: str, name: str) -> ApiError:
    message = f'{qualified_resource(group, plural)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _details(group, plural, name))


def conflict(group: str, plural: str, name: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {qualified_resource(group, plural)} "{name}": the '
        "object has been modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, _details(group, plural, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml "
        f"(got {content_type!r})",
    )


def expired(message: str = "too old resource version") -> ApiError:
    return ApiError(410, "Expired", message)


def invalid(kind: str, group: str, name: str, causes: list[Obj]) -> ApiError:
    """422 Invalid with one cause per field, worded as the real server does."""
    qualified_kind = f"{kind}.{group}" if group else kind
    rendered = [f"{cause['field']}: {cause['message']}" for cause in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {summary}',
        {"name": name, "group": group, "kind": kind, "causes": causes},
    )
