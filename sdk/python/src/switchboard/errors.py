"""The errors this package raises.

Every failure is a :class:`SwitchboardError`. Answers the API refused are
:class:`APIError`, which carries the API's stable ``code`` (such as
``room_not_found``) to branch on, its ``message`` (a sentence meant for a
person), the HTTP ``status`` and the ``request_id`` the server logged the
request under. A subclass per status lets you catch the common cases::

    try:
        client.rooms.get("standup")
    except switchboard.NotFoundError:
        ...  # code == "room_not_found"
"""

from __future__ import annotations

from typing import Any


class SwitchboardError(Exception):
    """Base class of every error this package raises."""


class ConfigurationError(SwitchboardError):
    """The client or a token was set up wrongly; the message says what to give."""


class ConnectionError(SwitchboardError):  # noqa: A001 - shadows the builtin on purpose, inside this namespace
    """The server could not be reached (or stopped answering) even after retrying."""


class WebhookVerificationError(SwitchboardError):
    """A webhook delivery's signature, headers or timestamp did not check out.

    Answer such a request with 400 and do not act on it: it was not sent by
    Switchboard with the endpoint's secret, or it was replayed long after.
    """


class APIError(SwitchboardError):
    """The API answered with an error.

    Attributes:
        status: the HTTP status, such as 404.
        code: the API's stable, machine-readable code, such as ``room_not_found``.
        message: what went wrong and, usually, what to do about it.
        request_id: the ``x-request-id`` the server logged; quote it in bug reports.
        body: the decoded JSON body (or the raw text when it was not JSON).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        body: Any = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.body = body
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        text = f"{where}{status} {code}: {message}"
        hint = _HINTS.get(status)
        if hint:
            text += f" ({hint})"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)


class BadRequestError(APIError):
    """400: the request was invalid; ``message`` names the field."""


class AuthenticationError(APIError):
    """401: the API key (or access token) is missing, wrong or revoked."""


class PermissionDeniedError(APIError):
    """403: authenticated, but not allowed (a suspended project, a token without the grant)."""


class NotFoundError(APIError):
    """404: no such resource in this project."""


class ConflictError(APIError):
    """409: the resource exists already or is in a state that forbids this."""


class UnprocessableError(APIError):
    """422: understood but refused, e.g. an ``Idempotency-Key`` reused for another request."""


class RateLimitError(APIError):
    """429: too many requests, still refused after the client's retries."""


class ServerError(APIError):
    """5xx: the server (or a media node behind it) failed, still after the client's retries."""


_HINTS = {
    401: "check the API key id and secret: SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET, or the client's arguments",
    429: "the client retried with backoff; slow down or raise max_retries",
}

_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableError,
    429: RateLimitError,
}


def error_for(
    status: int,
    body: Any,
    *,
    request_id: str | None = None,
    method: str = "",
    path: str = "",
) -> APIError:
    """The :class:`APIError` subclass for an error answer ``{"error": {"code", "message"}}``."""
    code, message = f"http_{status}", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or code)
        message = str(body["error"].get("message") or "")
    elif isinstance(body, str):
        message = body[:500]
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(
        status,
        code,
        message or "the server gave no explanation",
        request_id=request_id,
        body=body,
        method=method,
        path=path,
    )
