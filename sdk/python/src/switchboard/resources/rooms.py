"""``/v1/rooms``: create, list, read, change and delete rooms."""

from __future__ import annotations

import builtins

from .._model import body, load
from ..models import Room
from ..pagination import Page
from ._base import Resource


class Rooms(Resource):
    """Rooms of the project. A room also starts when its first participant
    joins with a token that has ``room_create``; creating it first lets you
    set its limits and metadata."""

    def create(
        self,
        name: str | None = None,
        *,
        empty_timeout_s: int | None = None,
        max_participants: int | None = None,
        metadata: str | None = None,
        region: str | None = None,
        record: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Room:
        """Creates a room; the server picks a name when ``name`` is ``None``.

        Args:
            name: unique in the project; a second create with the same name
                raises :class:`~switchboard.ConflictError` (``room_exists``).
            empty_timeout_s: seconds the room stays open once empty (default 300, at most 86400).
            max_participants: most participants at once; 0 means no limit.
            metadata: free-form data for your app, up to 64 KiB.
            region: preferred region of the media node, such as ``eu-west``.
            record: record every track from the first one published.
            idempotency_key: makes a retried create (after a timeout, say)
                return the first answer; one is generated when left out, so
                the client's own retries are safe either way.
        """
        req = body(
            name=name,
            empty_timeout_s=empty_timeout_s,
            max_participants=max_participants,
            metadata=metadata,
            region=region,
            record=record,
        )
        return load(Room, self._t.call("POST", "/v1/rooms", json=req, idempotency_key=idempotency_key))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Room]:
        """Rooms, oldest first, ``limit`` (1 to 100, default 20) at a time."""
        return self._page("GET", "/v1/rooms", Room, query={"limit": limit, "cursor": cursor})

    def get(self, name: str) -> Room:
        """One room, with how many participants are connected now."""
        return load(Room, self._t.call("GET", "/v1/rooms/{name}", path={"name": name}))

    def update(
        self,
        name: str,
        *,
        metadata: str | None = None,
        empty_timeout_s: int | None = None,
        max_participants: int | None = None,
    ) -> Room:
        """Changes a room's metadata or limits; arguments left out stay as they are."""
        req = body(metadata=metadata, empty_timeout_s=empty_timeout_s, max_participants=max_participants)
        return load(Room, self._t.call("PATCH", "/v1/rooms/{name}", path={"name": name}, json=req))

    def delete(self, name: str) -> None:
        """Deletes a room, disconnecting everyone in it."""
        self._t.call("DELETE", "/v1/rooms/{name}", path={"name": name})
