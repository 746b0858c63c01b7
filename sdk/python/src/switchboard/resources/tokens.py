"""Access tokens: signed offline (:meth:`Tokens.sign`) or by the server
(``POST /v1/tokens``), and the route lookup clients do with them."""

from __future__ import annotations

from typing import Any

from .._model import body, load
from ..access_token import DEFAULT_TTL_S, AccessToken, Grants
from ..models import Route, TokenResponse
from ._base import Resource


class Tokens(Resource):
    """Access tokens for your end users."""

    def sign(
        self,
        room: str,
        identity: str,
        *,
        name: str | None = None,
        metadata: str | None = None,
        grants: Grants | None = None,
        ttl_s: int = DEFAULT_TTL_S,
    ) -> str:
        """Signs an access token offline with the client's API key: no request is made.

        This is what your backend does for each user who joins a call. The
        user's client connects to the media node with it (the JS SDK's
        ``connect``), which places the room if it is not live yet.
        See :class:`~switchboard.AccessToken` for the arguments.
        """
        return AccessToken(
            self._t.api_key,
            self._t.api_secret,
            room=room,
            identity=identity,
            name=name,
            metadata=metadata,
            grants=grants or Grants(),
            ttl_s=ttl_s,
        ).to_jwt()

    def create(
        self,
        room: str,
        identity: str,
        *,
        name: str | None = None,
        metadata: str | None = None,
        grants: Grants | dict[str, Any] | None = None,
        ttl_s: int | None = None,
        region: str | None = None,
        client_ip: str | None = None,
        idempotency_key: str | None = None,
    ) -> TokenResponse:
        """Asks the server to sign a token and name the media node for it.

        Unlike :meth:`sign`, this places the room now (in ``region``, or the
        one nearest ``client_ip``) and returns the node's WebSocket ``url``.
        """
        if isinstance(grants, Grants):
            grants = grants.to_dict()
        req = body(
            room=room,
            identity=identity,
            name=name,
            metadata=metadata,
            grants=grants,
            ttl_s=ttl_s,
            region=region,
            client_ip=client_ip,
        )
        return load(
            TokenResponse, self._t.call("POST", "/v1/tokens", json=req, idempotency_key=idempotency_key)
        )

    def route(self, token: str, *, region: str | None = None) -> Route:
        """The media node a token connects to now (authenticated by the token, not the API key).

        Raises :class:`~switchboard.AuthenticationError` (``invalid_token`` or
        ``token_expired``) for a token the server does not accept.
        """
        return load(Route, self._t.call("GET", "/v1/rtc/route", query={"region": region}, bearer=token))
