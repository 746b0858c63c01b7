"""``/v1/events``: the project's event log, oldest first, and where each event went."""

from __future__ import annotations

import builtins

from datetime import datetime

from .._model import load
from ..models import Delivery, Event
from ..pagination import Page
from ._base import Resource


class Events(Resource):
    """The event log: every state change of the project, in order.

    Webhooks deliver these same events; reading the log is the way to catch
    up after downtime (keep the last ``next_cursor`` and resume from it).
    """

    def list(
        self,
        *,
        type: str | None = None,  # noqa: A002 - the API's name
        room: str | None = None,
        since: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Event]:
        """Events in log order (by ``seq``), filtered by type, room name or time.

        Args:
            type: one event type, such as ``participant.joined``.
            room: only events about the room with this name.
            since: only events at or after this time (an aware datetime or RFC 3339).
            limit: page size, 1 to 100 (default 20).
            cursor: the ``next_cursor`` of a previous page.
        """
        return self._page(
            "GET",
            "/v1/events",
            Event,
            query={"type": type, "room": room, "since": since, "limit": limit, "cursor": cursor},
        )

    def get(self, event_id: str) -> Event:
        """One event by id (``ev_...``)."""
        return load(Event, self._t.call("GET", "/v1/events/{id}", path={"id": event_id}))

    def deliveries(self, event_id: str) -> builtins.list[Delivery]:
        """Every delivery of one event to the project's endpoints, with their attempts."""
        answer = self._t.call("GET", "/v1/events/{id}/deliveries", path={"id": event_id})
        return [load(Delivery, d) for d in answer["data"]]
