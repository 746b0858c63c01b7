"""``/v1/usage`` and ``/v1/billing``: what the project used and what it costs."""

from __future__ import annotations

from datetime import date, datetime

from .._model import load
from ..models import BillingPreview, Session, SessionQuality, StripeAccount, UsageReport
from ..pagination import Page
from ._base import Resource


class Usage(Resource):
    """Metered usage: participant-minutes, recording minutes, function runs."""

    def get(
        self,
        *,
        from_: date | datetime | str | None = None,
        to: date | datetime | str | None = None,
        granularity: str | None = None,
        meter: str | None = None,
    ) -> UsageReport:
        """Usage by meter, bucket and room over a window.

        Args:
            from_: start, on the hour (a date, an aware datetime, or RFC 3339);
                default: the current billing period's start.
            to: end (exclusive), on the hour; default: the end of the current hour.
            granularity: ``hour``, ``day`` (default) or ``month``.
            meter: only this meter.
        """
        query = {"from": from_, "to": to, "granularity": granularity, "meter": meter}
        return load(UsageReport, self._t.call("GET", "/v1/usage", query=query))

    def sessions(
        self,
        *,
        room: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Session]:
        """The participant sessions behind the numbers, newest first."""
        query = {"room": room, "from": from_, "to": to, "limit": limit, "cursor": cursor}
        return self._page("GET", "/v1/usage/sessions", Session, query=query)

    def session_quality(self, participant_sid: str) -> SessionQuality:
        """A session's connection every few seconds: bitrates, loss, round trip, quality."""
        return load(
            SessionQuality,
            self._t.call("GET", "/v1/usage/sessions/{sid}/quality", path={"sid": participant_sid}),
        )


class Billing(Resource):
    """Invoices as they stand, and the project's Stripe account."""

    def preview(self, *, period: str | None = None) -> BillingPreview:
        """The invoice of a period (``YYYY-MM``, default the current one) as it stands."""
        return load(BillingPreview, self._t.call("GET", "/v1/billing/preview", query={"period": period}))

    def stripe(self, *, limit: int | None = None) -> StripeAccount:
        """The project's Stripe customer, suspension and latest usage reports (``limit``, default 20)."""
        return load(StripeAccount, self._t.call("GET", "/v1/billing/stripe", query={"limit": limit}))
