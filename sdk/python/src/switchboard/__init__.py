"""Switchboard's server SDK for Python.

Drive a Switchboard deployment from your backend: a typed REST client for
every resource, access tokens signed offline, and webhook verification::

    from switchboard import Switchboard

    client = Switchboard()                     # SWITCHBOARD_URL, _API_KEY, _API_SECRET
    room = client.rooms.create("standup")
    token = client.tokens.sign(room.name, "ann")   # give it to Ann's browser

See the README for a tour, :mod:`switchboard.webhook` for receiving events,
and :mod:`switchboard.errors` for what can go wrong.
"""

from ._version import __version__
from .access_token import AccessToken, Claims, Grants, verify_access_token
from .client import Switchboard
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ConnectionError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SwitchboardError,
    UnprocessableError,
    WebhookVerificationError,
)
from .models import (
    Delivery,
    Event,
    Participant,
    Recording,
    Room,
    TokenResponse,
    Webhook,
)
from .pagination import Page
from .webhook import verify_webhook

__all__ = [
    "__version__",
    "Switchboard",
    "AccessToken",
    "Grants",
    "Claims",
    "verify_access_token",
    "verify_webhook",
    "Page",
    "Room",
    "Participant",
    "Event",
    "Webhook",
    "Delivery",
    "Recording",
    "TokenResponse",
    "SwitchboardError",
    "ConfigurationError",
    "ConnectionError",
    "WebhookVerificationError",
    "APIError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableError",
    "RateLimitError",
    "ServerError",
]
