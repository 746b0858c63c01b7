"""Access tokens, signed offline: what your end users join rooms with.

An access token is an HS256 JWT signed with an API key's secret. Your backend
signs one per user and room, hands it to the browser or app, and the media
node checks it when the user connects. No request to Switchboard is made::

    from switchboard import AccessToken, Grants

    token = AccessToken(
        "my_key_id", "my_key_secret",
        room="standup", identity="ann", name="Ann",
        grants=Grants(can_publish=False),   # a viewer
        ttl_s=3600,
    ).to_jwt()

The claims are exactly those ``switchboard token create`` and
``POST /v1/tokens`` sign: ``iss`` (the key id, also the header's ``kid``),
``sub`` (the identity), ``iat``/``nbf``/``exp`` and ``grants``, plus ``name``
and ``metadata`` when given. ``POST /v1/tokens`` (``client.tokens.create``)
additionally names the media node and returns its URL; an offline token is
routed by the server when it connects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import unicodedata
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from .errors import ConfigurationError

#: Shortest lifetime the server accepts, in seconds.
MIN_TTL_S = 1
#: Longest lifetime the server accepts, in seconds (24 hours).
MAX_TTL_S = 86_400
#: Lifetime when none is given, in seconds (6 hours), as the server's.
DEFAULT_TTL_S = 21_600
#: Largest ``metadata`` a token may carry, in bytes.
MAX_METADATA_BYTES = 4096
#: Longest room name, identity or display name, in bytes (UTF-8).
MAX_NAME_BYTES = 128


@dataclass(frozen=True, kw_only=True)
class Grants:
    """What the holder of a token may do. The defaults are the server's."""

    room: str | None = None
    """The only room the token joins; :class:`AccessToken` fills it in from ``room``."""
    can_publish: bool = True
    """May publish audio and video tracks."""
    can_subscribe: bool = True
    """May subscribe to other participants' tracks."""
    can_publish_data: bool = True
    """May send data messages."""
    room_admin: bool = False
    """May mute, remove and update other participants of the room."""
    room_create: bool = False
    """May create the room by joining it when it does not exist yet."""
    recorder: bool = False
    """Joins as a recorder: hidden from other participants and not billed as one."""
    can_update_metadata: bool = False
    """May change its own name and metadata; otherwise the app sets them."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, field for field as the server writes it."""
        d: dict[str, Any] = {}
        if self.room is not None:
            d["room"] = self.room
        d.update(
            can_publish=self.can_publish,
            can_subscribe=self.can_subscribe,
            can_publish_data=self.can_publish_data,
            room_admin=self.room_admin,
            room_create=self.room_create,
            recorder=self.recorder,
        )
        if self.can_update_metadata:
            d["can_update_metadata"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Grants":
        """Grants from their JSON form (missing fields take the defaults)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def check_name(what: str, value: str) -> None:
    """Refuses a room name or identity the server would refuse, saying why."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string")
    n = len(value.encode())
    if n > MAX_NAME_BYTES:
        raise ConfigurationError(f"{what} is {n} bytes long; the limit is {MAX_NAME_BYTES} bytes")
    for c in value:
        if unicodedata.category(c) == "Cc":
            raise ConfigurationError(f"{what} must not contain control characters (found U+{ord(c):04X})")


@dataclass(frozen=True, kw_only=True)
class Claims:
    """The claims of a verified access token (see :func:`verify_access_token`)."""

    iss: str
    sub: str
    exp: int
    nbf: int
    iat: int
    grants: Grants
    name: str | None = None
    metadata: str | None = None
    node: str | None = None
    named_at: int | None = None

    @property
    def identity(self) -> str:
        """The participant identity (``sub``)."""
        return self.sub

    @property
    def room(self) -> str | None:
        """The room the token joins (``grants.room``)."""
        return self.grants.room


@dataclass(frozen=True)
class AccessToken:
    """An access token to sign with an API key, offline.

    Args:
        api_key: the API key id (``kid``), such as the dev server's ``devkey``.
        api_secret: that key's secret.
        room: the room the token joins.
        identity: the participant's identity, unique in the room.
        name: display name (at most 128 bytes).
        metadata: data other participants see, at most 4 KiB.
        grants: what the participant may do; ``Grants()`` (publish, subscribe,
            data) when left out. Its ``room`` must be unset or equal ``room``.
        ttl_s: lifetime in seconds, 1 to 86400 (default 6 hours).
    """

    api_key: str
    api_secret: str = field(repr=False)
    _: KW_ONLY
    room: str
    identity: str
    name: str | None = None
    metadata: str | None = None
    grants: Grants = field(default_factory=Grants)
    ttl_s: int = DEFAULT_TTL_S

    def claims(self, now: float | None = None) -> dict[str, Any]:
        """The JWT claims, checked as the server checks them; ``now`` in Unix seconds."""
        if not self.api_key or not self.api_secret:
            raise ConfigurationError(
                "an access token needs the API key id and its secret: pass them, or set "
                "SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET (the dev server's are devkey / secret)"
            )
        check_name("room", self.room)
        check_name("identity", self.identity)
        if self.grants.room is not None and self.grants.room != self.room:
            raise ConfigurationError(
                f"grants.room {self.grants.room!r} differs from room {self.room!r}; leave grants.room out"
            )
        if not (MIN_TTL_S <= int(self.ttl_s) <= MAX_TTL_S):
            raise ConfigurationError(
                f"ttl_s must be between {MIN_TTL_S} and {MAX_TTL_S} seconds, got {self.ttl_s}"
            )
        if self.metadata is not None and len(self.metadata.encode()) > MAX_METADATA_BYTES:
            raise ConfigurationError(
                f"token metadata is {len(self.metadata.encode())} bytes; the limit is {MAX_METADATA_BYTES}"
            )
        if self.name is not None:
            n = len(self.name.encode())
            if n > MAX_NAME_BYTES or any(unicodedata.category(c) == "Cc" for c in self.name):
                raise ConfigurationError(
                    f"name must be at most {MAX_NAME_BYTES} bytes without control characters ({n} bytes given)"
                )
        iat = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.api_key,
            "sub": self.identity,
            "exp": iat + int(self.ttl_s),
            "nbf": iat,
            "iat": iat,
        }
        if self.name is not None:
            claims["name"] = self.name
        if self.metadata is not None:
            claims["metadata"] = self.metadata
        grants = Grants(**{**self.grants.__dict__, "room": self.room})
        claims["grants"] = grants.to_dict()
        return claims

    def to_jwt(self, now: float | None = None) -> str:
        """Signs the token: an HS256 JWT whose header's ``kid`` is the API key id."""
        header = {"typ": "JWT", "alg": "HS256", "kid": self.api_key}
        return _sign(header, self.claims(now), self.api_secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _sign(header: dict[str, Any], claims: dict[str, Any], secret: str) -> str:
    signing_input = f"{_b64(_compact(header))}.{_b64(_compact(claims))}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def verify_access_token(token: str, api_secret: str, *, now: float | None = None) -> Claims:
    """Checks a token's signature and lifetime with the key's secret; returns its claims.

    The server does this when a participant connects; use it to inspect a
    token in a test or a support tool. Raises :class:`ConfigurationError`
    (with the reason) when the token is malformed, forged, expired or early.
    """
    try:
        h64, c64, s64 = token.split(".")
        header = json.loads(_unb64(h64))
        claims = json.loads(_unb64(c64))
        sig = _unb64(s64)
    except ValueError as e:
        raise ConfigurationError(f"the access token is malformed: {e}") from e
    if header.get("alg") != "HS256":
        raise ConfigurationError(f"algorithm {header.get('alg')!r} is not accepted; use HS256")
    expected = hmac.new(api_secret.encode(), f"{h64}.{c64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, sig):
        raise ConfigurationError("the access token's signature is invalid (another key's secret?)")
    t = int(time.time() if now is None else now)
    if t >= claims["exp"]:
        raise ConfigurationError(f"the access token expired at {claims['exp']} (Unix time)")
    if t < claims["nbf"]:
        raise ConfigurationError(f"the access token is not valid before {claims['nbf']} (Unix time)")
    return Claims(
        iss=claims["iss"],
        sub=claims["sub"],
        exp=claims["exp"],
        nbf=claims["nbf"],
        iat=claims["iat"],
        grants=Grants.from_dict(claims.get("grants") or {}),
        name=claims.get("name"),
        metadata=claims.get("metadata"),
        node=claims.get("node"),
        named_at=claims.get("named_at"),
    )
