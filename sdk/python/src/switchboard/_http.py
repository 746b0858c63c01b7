"""The HTTP transport every resource shares.

One place for what every call needs: HTTP Basic with the API key, JSON in and
out, an ``Idempotency-Key`` on every ``POST`` (so a retried create cannot
create twice), retries with exponential backoff on 429, 5xx and dropped
connections (honouring ``Retry-After``), and errors that carry the API's
``code``. It uses only the standard library (``urllib``).
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json as jsonlib
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping

from . import errors
from ._model import rfc3339
from ._version import __version__

#: Answers worth another try. Every method is retried: ``GET``, ``PUT``,
#: ``PATCH`` and ``DELETE`` are idempotent, and every ``POST`` carries an
#: idempotency key.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is empty."""
        return jsonlib.loads(self.body) if self.body else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Redirects come back to the caller: the only one the API sends (a
    # recording in a bucket) must be followed without our Authorization header.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return rfc3339(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return ",".join(_query_value(x) for x in v)
    return str(v)


class Transport:
    """Sends requests to one Switchboard server with one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.api_secret = api_secret
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        basic = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self._basic = f"Basic {basic}"
        self._opener = urllib.request.build_opener(_NoRedirect)
        self.user_agent = (
            f"switchboard-python/{__version__} python/{sys.version_info.major}.{sys.version_info.minor}"
        )

    def url(self, template: str, path: Mapping[str, Any] | None = None) -> str:
        """``base_url`` plus ``template`` with each ``{name}`` replaced, percent-encoded."""
        filled = template
        for name, value in (path or {}).items():
            filled = filled.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
        return self.base_url + filled

    def call(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
        bearer: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Sends a request and returns its JSON answer (``None`` for 204).

        Raises :class:`~switchboard.APIError` (a subclass per status) when the
        API refuses, :class:`~switchboard.ConnectionError` when it cannot be
        reached after the retries.
        """
        res = self.send(
            method,
            template,
            path=path,
            query=query,
            json=json,
            data=data,
            content_type=content_type,
            idempotency_key=idempotency_key,
            bearer=bearer,
            headers=headers,
        )
        try:
            return res.json()
        except ValueError as e:
            raise errors.SwitchboardError(
                f"{method} {template}: the answer ({res.status}, {res.headers.get('content-type')}) is not "
                f"JSON; is {self.base_url} a Switchboard server's URL, not a proxy's or the dashboard's?"
            ) from e

    def send(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
        bearer: str | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> Response:
        """Like :meth:`call`, returning the raw :class:`Response`.

        Statuses in ``ok_statuses`` (besides 2xx) come back instead of raising.
        """
        url = self.url(template, path)
        if query:
            pairs = [(k, _query_value(v)) for k, v in query.items() if v is not None]
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        hdrs = {
            "accept": "application/json",
            "user-agent": self.user_agent,
            "authorization": f"Bearer {bearer}" if bearer else self._basic,
        }
        if json is not None:
            data = jsonlib.dumps(json, separators=(",", ":")).encode()
            content_type = "application/json"
        if content_type:
            hdrs["content-type"] = content_type
        if method == "POST":
            # One key per logical call, the same on every retry: the server
            # answers a repeat with the first answer instead of acting twice.
            hdrs["idempotency-key"] = idempotency_key or f"sbpy_{uuid.uuid4().hex}"
        hdrs.update(headers or {})
        shown = template.format_map(_Keep(path or {}))

        attempt = 0
        while True:
            try:
                res = self._once(method, url, data, hdrs)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                if attempt < self.max_retries:
                    time.sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                reason = getattr(e, "reason", e)
                raise errors.ConnectionError(
                    f"{method} {shown}: could not reach {self.base_url} after {attempt + 1} "
                    f"attempt(s): {reason}. Check that the server runs and that the URL "
                    "(SWITCHBOARD_URL or the client's `url`) is right"
                ) from e
            if 200 <= res.status < 300 or res.status in ok_statuses:
                return res
            body = _decode_error_body(res)
            retryable = res.status in _RETRY_STATUSES or (
                res.status == 409
                and isinstance(body, dict)
                and (body.get("error") or {}).get("code") == "idempotency_key_in_use"
            )
            if retryable and attempt < self.max_retries:
                time.sleep(self._delay(attempt, res.headers.get("retry-after")))
                attempt += 1
                continue
            raise errors.error_for(
                res.status,
                body,
                request_id=res.headers.get("x-request-id"),
                method=method,
                path=shown,
            )

    def _once(self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]) -> Response:
        req = urllib.request.Request(url, data=data, headers=dict(headers), method=method)
        try:
            with self._opener.open(req, timeout=self.timeout) as r:
                return Response(r.status, _lower(r.headers), r.read())
        except urllib.error.HTTPError as e:
            with e:
                body = e.read()
            return Response(e.code, _lower(e.headers), body)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), _MAX_RETRY_AFTER_S)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(retry_after)
                    wait: float = when.timestamp() - time.time()
                    return min(max(wait, 0.0), _MAX_RETRY_AFTER_S)
                except (TypeError, ValueError):
                    pass
        base = min(self.backoff_s * (2.0**attempt), self.max_backoff_s)
        return base * random.uniform(0.5, 1.0)


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()} if headers else {}


def _decode_error_body(res: Response) -> Any:
    try:
        return res.json()
    except ValueError:
        return res.body.decode("utf-8", "replace")
