"""``/v1/rooms/{name}/participants``: who is connected, and acting on them."""

from __future__ import annotations

import builtins

from typing import Any

from .._model import body, load
from ..models import Participant, ParticipantPermissions
from ._base import Resource


def _permissions(p: ParticipantPermissions | dict[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(p, ParticipantPermissions):
        return {
            "can_publish": p.can_publish,
            "can_subscribe": p.can_subscribe,
            "can_publish_data": p.can_publish_data,
        }
    return p


class Participants(Resource):
    """The live participants of a room (they live on the media nodes)."""

    def list(self, room: str) -> builtins.list[Participant]:
        """Everyone connected to ``room`` now (not paginated)."""
        answer = self._t.call("GET", "/v1/rooms/{name}/participants", path={"name": room})
        return [load(Participant, p) for p in answer["data"]]

    def get(self, room: str, identity: str) -> Participant:
        """One connected participant; :class:`~switchboard.NotFoundError` when not connected."""
        return load(
            Participant,
            self._t.call(
                "GET",
                "/v1/rooms/{name}/participants/{identity}",
                path={"name": room, "identity": identity},
            ),
        )

    def update(
        self,
        room: str,
        identity: str,
        *,
        name: str | None = None,
        metadata: str | None = None,
        permissions: ParticipantPermissions | dict[str, Any] | None = None,
    ) -> Participant:
        """Changes a participant's display name, metadata or permissions, live.

        ``permissions`` is all three of ``can_publish``, ``can_subscribe`` and
        ``can_publish_data``; revoking ``can_publish`` unpublishes its tracks.
        """
        req = body(name=name, metadata=metadata, permissions=_permissions(permissions))
        return load(
            Participant,
            self._t.call(
                "PATCH",
                "/v1/rooms/{name}/participants/{identity}",
                path={"name": room, "identity": identity},
                json=req,
            ),
        )

    def remove(self, room: str, identity: str) -> None:
        """Disconnects a participant (it gets ``leave`` with reason ``removed``).

        Its token still works: sign tokens with short lifetimes, or take its
        ``can_publish`` away instead, to keep someone out.
        """
        self._t.call(
            "DELETE",
            "/v1/rooms/{name}/participants/{identity}",
            path={"name": room, "identity": identity},
        )

    def mute_track(self, room: str, identity: str, track_sid: str, muted: bool = True) -> Participant:
        """Mutes (or unmutes) one of a participant's tracks; the publisher cannot unmute it."""
        return load(
            Participant,
            self._t.call(
                "POST",
                "/v1/rooms/{name}/participants/{identity}/mute",
                path={"name": room, "identity": identity},
                json={"track_sid": track_sid, "muted": muted},
            ),
        )
