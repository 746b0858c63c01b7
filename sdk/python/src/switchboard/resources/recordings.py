"""``/v1/rooms/{name}/recordings`` and ``/v1/recordings``: record rooms,
list recordings, download their files."""

from __future__ import annotations

import builtins

import urllib.request

from .._model import body, load
from ..errors import ConnectionError
from ..models import Recording, SignedUrl
from ..pagination import Page
from ._base import Resource


class Recordings(Resource):
    """Recordings: ``tracks`` mode writes each track to its own file,
    ``composite`` also mixes them into one MP4 once the recording ends."""

    def start(
        self,
        room: str,
        *,
        mode: str = "tracks",
        audio_only: bool | None = None,
        tracks: builtins.list[str] | None = None,
        identities: builtins.list[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Recording:
        """Starts recording a room (a room not live yet starts recording when it goes live).

        Args:
            mode: ``tracks`` or ``composite``.
            audio_only: record audio tracks only.
            tracks: only these track sids (all when left out).
            identities: only these participants' tracks (everyone's when left out).
        """
        req = body(mode=mode, audio_only=audio_only, tracks=tracks, identities=identities)
        return load(
            Recording,
            self._t.call(
                "POST",
                "/v1/rooms/{name}/recordings",
                path={"name": room},
                json=req,
                idempotency_key=idempotency_key,
            ),
        )

    def list(
        self, *, room: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Recording]:
        """Recordings, oldest first, optionally of one room."""
        return self._page(
            "GET", "/v1/recordings", Recording, query={"room": room, "limit": limit, "cursor": cursor}
        )

    def get(self, recording_id: str) -> Recording:
        """One recording, with its files so far."""
        return load(Recording, self._t.call("GET", "/v1/recordings/{id}", path={"id": recording_id}))

    def stop(self, recording_id: str) -> Recording:
        """Stops a recording; it is ``finished`` once its files are closed (and mixed)."""
        return load(Recording, self._t.call("POST", "/v1/recordings/{id}/stop", path={"id": recording_id}))

    def delete(self, recording_id: str) -> None:
        """Deletes a finished or failed recording and its files (stop it first)."""
        self._t.call("DELETE", "/v1/recordings/{id}", path={"id": recording_id})

    def download(self, recording_id: str, file: str) -> bytes:
        """The bytes of one of a recording's files (a name from ``recording.files``).

        A file kept in an S3-compatible bucket is fetched from the presigned
        URL the server redirects to, without sending your API key there.
        """
        res = self._t.send(
            "GET",
            "/v1/recordings/{id}/files/{file}",
            path={"id": recording_id, "file": file},
            headers={"accept": "*/*"},
            ok_statuses=frozenset({301, 302, 303, 307, 308}),
        )
        location = res.headers.get("location")
        if res.status < 300 or not location:
            return res.body
        try:
            with urllib.request.urlopen(location, timeout=self._t.timeout) as r:
                data: bytes = r.read()
                return data
        except OSError as e:
            raise ConnectionError(f"could not download {file} from the recordings bucket: {e}") from e

    def signed_url(self, recording_id: str, file: str, *, expires_in_s: int | None = None) -> SignedUrl:
        """A download URL that needs no API key, valid ``expires_in_s`` (default 3600, at most a week).

        ``url`` is a path on the API's server: prefix it with the server's URL.
        """
        return load(
            SignedUrl,
            self._t.call(
                "POST",
                "/v1/recordings/{id}/files/{file}/url",
                path={"id": recording_id, "file": file},
                json=body(expires_in_s=expires_in_s),
            ),
        )
