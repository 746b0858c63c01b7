"""``/v1/webhooks``: endpoints that receive the project's events, their
secrets, and the log of every delivery."""

from __future__ import annotations

import builtins

from datetime import datetime
from typing import Any, Mapping

from .._model import body, load, rfc3339
from ..models import CreatedWebhook, Delivery, Event, Replayed, RotatedSecret, TestSent, Webhook
from ..pagination import Page
from ..webhook import verify_webhook
from ._base import Resource


class Webhooks(Resource):
    """Webhook endpoints: where Switchboard POSTs events, signed and retried."""

    def create(
        self,
        url: str,
        events: builtins.list[str],
        *,
        description: str | None = None,
        enabled: bool | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedWebhook:
        """Registers an endpoint; the answer's ``secret`` is shown this once: store it.

        Args:
            url: where to POST events; ``https://`` (``http://`` and private
                addresses only on a server run with ``--dev``).
            events: types to receive: exact (``participant.joined``),
                prefixes (``room.*``) or ``["*"]`` for all.
            description: what it is for, up to 512 bytes.
            enabled: start enabled (default true).
        """
        req = body(url=url, events=list(events), description=description, enabled=enabled)
        return load(
            CreatedWebhook, self._t.call("POST", "/v1/webhooks", json=req, idempotency_key=idempotency_key)
        )

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Webhook]:
        """The project's endpoints, oldest first."""
        return self._page("GET", "/v1/webhooks", Webhook, query={"limit": limit, "cursor": cursor})

    def get(self, webhook_id: str) -> Webhook:
        """One endpoint (``wh_...``)."""
        return load(Webhook, self._t.call("GET", "/v1/webhooks/{id}", path={"id": webhook_id}))

    def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: builtins.list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> Webhook:
        """Changes an endpoint; ``enabled=True`` re-enables one the server disabled."""
        req = body(url=url, events=events, description=description, enabled=enabled)
        return load(Webhook, self._t.call("PATCH", "/v1/webhooks/{id}", path={"id": webhook_id}, json=req))

    def delete(self, webhook_id: str) -> None:
        """Deletes an endpoint; its deliveries stay readable through events."""
        self._t.call("DELETE", "/v1/webhooks/{id}", path={"id": webhook_id})

    def rotate_secret(self, webhook_id: str) -> RotatedSecret:
        """A new signing secret; for 24 hours deliveries carry signatures by both."""
        return load(
            RotatedSecret, self._t.call("POST", "/v1/webhooks/{id}/rotate-secret", path={"id": webhook_id})
        )

    def test(self, webhook_id: str) -> TestSent:
        """Sends a ``webhook.test`` event to this endpoint only."""
        return load(TestSent, self._t.call("POST", "/v1/webhooks/{id}/test", path={"id": webhook_id}))

    def deliveries(
        self, webhook_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Delivery]:
        """Deliveries to this endpoint with every attempt, newest first."""
        return self._page(
            "GET",
            "/v1/webhooks/{id}/deliveries",
            Delivery,
            path={"id": webhook_id},
            query={"limit": limit, "cursor": cursor},
        )

    def retry_delivery(self, delivery_id: str) -> Delivery:
        """Makes a delivery (``whd_...``) due again now, whatever its status."""
        return load(
            Delivery, self._t.call("POST", "/v1/webhooks/deliveries/{id}/retry", path={"id": delivery_id})
        )

    def replay(self, webhook_id: str, since: datetime | str) -> Replayed:
        """Resends every subscribed event at or after ``since`` (at most 10,000)."""
        return load(
            Replayed,
            self._t.call(
                "POST", "/v1/webhooks/{id}/replay", path={"id": webhook_id}, json={"since": rfc3339(since)}
            ),
        )

    @staticmethod
    def verify(payload: bytes | str, headers: Mapping[str, str] | Any, secret: str) -> Event:
        """Verifies a delivery's signature; see :func:`switchboard.verify_webhook`."""
        return verify_webhook(payload, headers, secret)
