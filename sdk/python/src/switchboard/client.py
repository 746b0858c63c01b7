"""The client: one object per server and API key, a resource per attribute."""

from __future__ import annotations

import os

from ._http import Transport
from .errors import ConfigurationError
from .resources.events import Events
from .resources.functions import Functions, Kv
from .resources.participants import Participants
from .resources.project import ApiKeys, Projects
from .resources.recordings import Recordings
from .resources.rooms import Rooms
from .resources.tokens import Tokens
from .resources.usage import Billing, Usage
from .resources.webhooks import Webhooks


class Switchboard:
    """A client of one Switchboard server, authenticated with one API key.

    Arguments left out are read from the environment: ``SWITCHBOARD_URL``,
    ``SWITCHBOARD_API_KEY`` and ``SWITCHBOARD_API_SECRET``. Against a server
    run with ``switchboard serve --dev``::

        client = Switchboard("http://127.0.0.1:7880", "devkey", "secret")
        room = client.rooms.create("standup")

    Every call retries on 429, 5xx and dropped connections (``max_retries``
    times, with exponential backoff that honours ``Retry-After``), and every
    ``POST`` carries an ``Idempotency-Key`` so a retry never acts twice.
    Failures raise :class:`~switchboard.APIError` subclasses carrying the
    API's ``code``.

    Attributes:
        rooms, participants, tokens, webhooks, events, functions, kv,
        recordings, usage, billing, project, api_keys: the resources.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
    ) -> None:
        url = url or os.environ.get("SWITCHBOARD_URL")
        api_key = api_key or os.environ.get("SWITCHBOARD_API_KEY")
        api_secret = api_secret or os.environ.get("SWITCHBOARD_API_SECRET")
        missing = [
            name
            for name, value in (
                ("url (or SWITCHBOARD_URL)", url),
                ("api_key (or SWITCHBOARD_API_KEY)", api_key),
                ("api_secret (or SWITCHBOARD_API_SECRET)", api_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                "Switchboard() needs " + ", ".join(missing) + ". `switchboard serve --dev` prints them "
                "(http://127.0.0.1:7880, devkey, secret); `switchboard project create` makes a real key"
            )
        assert url and api_key and api_secret
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"url must start with http:// or https://, got {url!r}")
        self._transport = Transport(url, api_key, api_secret, timeout=timeout, max_retries=max_retries)
        t = self._transport
        self.rooms = Rooms(t)
        self.participants = Participants(t)
        self.tokens = Tokens(t)
        self.webhooks = Webhooks(t)
        self.events = Events(t)
        self.functions = Functions(t)
        self.kv = Kv(t)
        self.recordings = Recordings(t)
        self.usage = Usage(t)
        self.billing = Billing(t)
        self.project = Projects(t)
        self.api_keys = ApiKeys(t)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._transport.base_url

    def __repr__(self) -> str:
        return f"Switchboard(url={self.url!r}, api_key={self._transport.api_key!r})"
