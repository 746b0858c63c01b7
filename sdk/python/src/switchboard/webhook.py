"""Verifying webhook deliveries, with the Standard Webhooks reference library.

Switchboard signs each delivery per `Standard Webhooks
<https://www.standardwebhooks.com/>`_: an HMAC-SHA256 over
``{webhook-id}.{webhook-timestamp}.{body}`` keyed with the endpoint's secret.
Check it before acting on a delivery, with the body exactly as received
(bytes, before any JSON parsing)::

    from switchboard import verify_webhook, WebhookVerificationError

    def handle(request):                        # any web framework
        try:
            event = verify_webhook(request.body, request.headers, WEBHOOK_SECRET)
        except WebhookVerificationError:
            return 400
        if event.type == "participant.joined":
            ...
        return 204                              # any 2xx within 15 s

Deliveries are at least once: deduplicate on ``event.id`` (the
``webhook-id`` header), and order by ``event.seq`` where order matters.
"""

from __future__ import annotations

from typing import Any, Mapping

import standardwebhooks

from ._model import load
from .errors import ConfigurationError, WebhookVerificationError
from .models import Event


def _header_dict(headers: Mapping[str, str] | Any) -> dict[str, str]:
    # Accepts a dict, http.client / email.message headers, or any object
    # with items() (Flask's, Django's, Starlette's), names in any case.
    pairs: Any = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in pairs}


def verify_webhook(payload: bytes | str, headers: Mapping[str, str] | Any, secret: str) -> Event:
    """Verifies a delivery and returns its event.

    Args:
        payload: the request body exactly as received.
        headers: the request headers (``webhook-id``, ``webhook-timestamp``,
            ``webhook-signature``); any mapping or object with ``items()``.
        secret: the endpoint's secret (``whsec_...``), from
            ``client.webhooks.create`` or ``rotate_secret``.

    Raises:
        WebhookVerificationError: the signature does not match this secret,
            a header is missing, or the timestamp is more than 5 minutes off
            (a replayed request, or a receiver whose clock is wrong).
    """
    if not secret:
        raise ConfigurationError(
            "verify_webhook needs the endpoint's secret (whsec_...): it is in the answer to "
            "webhooks.create, or rotate one with webhooks.rotate_secret"
        )
    try:
        verifier = standardwebhooks.Webhook(secret)
    except Exception as e:  # the library raises several kinds for a bad secret
        raise ConfigurationError(f"the webhook secret is not a whsec_ secret: {e}") from e
    if isinstance(payload, (bytes, bytearray, memoryview)):
        payload = bytes(payload).decode("utf-8")
    try:
        data = verifier.verify(payload, _header_dict(headers))
    except standardwebhooks.WebhookVerificationError as e:
        raise WebhookVerificationError(f"webhook delivery refused: {e}") from e
    except (ValueError, TypeError) as e:  # a malformed signature header
        raise WebhookVerificationError(f"webhook delivery refused: malformed headers ({e})") from e
    return load(Event, data)
