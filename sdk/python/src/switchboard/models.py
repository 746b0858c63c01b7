"""What the API returns, as typed, frozen dataclasses.

Field names and meanings are the API's (see ``GET /v1/openapi.json``). Times
are timezone-aware :class:`~datetime.datetime`; every model also keeps the
JSON it was built from in ``raw``, so a field added to the API after this
package was released is still readable as ``model.raw["new_field"]``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dataclasses import dataclass, field

from ._model import Model

# -- rooms and participants ---------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Room(Model):
    """A room: a place participants join (``/v1/rooms``)."""

    sid: str
    """This incarnation of the room (``rm_...``): a room deleted and created again has a new sid."""
    name: str
    """Unique within the project."""
    created_at: datetime
    empty_timeout_s: int
    """Seconds the room stays open after its last participant leaves."""
    max_participants: int
    """Most participants at once; 0 means no limit."""
    metadata: str
    region: str | None = None
    """Where the app would like the room hosted, such as ``eu-west``."""
    record: bool = False
    """Whether every track is recorded from the first one published."""
    num_participants: int = 0
    """Participants connected right now."""


@dataclass(frozen=True, kw_only=True)
class ParticipantPermissions(Model):
    """What a participant may do right now."""

    can_publish: bool
    can_subscribe: bool
    can_publish_data: bool


@dataclass(frozen=True, kw_only=True)
class TrackInfo(Model):
    """A track a participant publishes."""

    sid: str
    kind: str
    """``audio`` or ``video``."""
    source: str
    """``camera``, ``microphone``, ``screen_share``, ``screen_share_audio`` or ``unknown``."""
    mime_type: str | None = None
    muted: bool = False
    simulcast: bool = False


@dataclass(frozen=True, kw_only=True)
class ConnectionStats(Model):
    """A participant's connection over the last few seconds."""

    quality: str
    """``excellent``, ``good``, ``poor`` or ``lost``."""
    publish_bps: int
    subscribe_bps: int
    loss_per_mille: int
    rtt_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class Participant(Model):
    """A participant connected to a room (``/v1/rooms/{name}/participants``)."""

    sid: str
    """This session (``pa_...``)."""
    identity: str
    name: str
    metadata: str
    state: str
    """``joining``, ``active`` or ``reconnecting``."""
    joined_at: datetime
    permissions: ParticipantPermissions
    tracks: list[TrackInfo]
    connection: ConnectionStats | None = None


# -- tokens ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TokenResponse(Model):
    """An access token the server signed (``POST /v1/tokens``), with where to connect."""

    token: str
    url: str
    """The signaling WebSocket URL of the media node that hosts the room."""
    route_url: str
    """Where a client whose node stopped answering asks for the room's node now."""
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class Route(Model):
    """The media node a token connects to now (``GET /v1/rtc/route``)."""

    url: str
    region: str


# -- events and webhooks ----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Event(Model):
    """One entry of the project's event log, as listed and as webhooks deliver it.

    ``data``'s shape depends on ``type``; docs/webhooks.md lists each.
    """

    id: str
    """Unique (``ev_...``); also the ``webhook-id`` header: deduplicate on it."""
    project_id: str
    seq: int
    """Position in the project's log: gap-free and increasing."""
    created_at: datetime
    type: str
    """Such as ``room.started`` or ``participant.joined``."""
    data: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Webhook(Model):
    """A webhook endpoint (without its secret)."""

    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    disabled_reason: str | None = None
    failing_since: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class CreatedWebhook(Webhook):
    """A new endpoint and its signing secret, which is shown this once: store it."""

    secret: str
    """The Standard Webhooks secret (``whsec_...``) to verify deliveries with."""


@dataclass(frozen=True, kw_only=True)
class RotatedSecret(Model):
    """A webhook's new secret after a rotation."""

    secret: str
    previous_secret_expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class TestSent(Model):
    """The ``webhook.test`` event a test queued."""

    event_id: str


@dataclass(frozen=True, kw_only=True)
class Attempt(Model):
    """One HTTP attempt of a delivery."""

    id: str
    attempted_at: datetime
    latency_ms: int
    response_body: str
    succeeded: bool
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Delivery(Model):
    """One event's delivery to one endpoint, with its attempts."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    origin: str
    """``event`` (from the log) or ``replay``."""
    status: str
    """``pending``, ``succeeded`` or ``failed``."""
    created_at: datetime
    updated_at: datetime
    attempts: list[Attempt]
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Replayed(Model):
    """What a replay queued."""

    queued: int


# -- functions --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Function(Model):
    """A deployed function (WebAssembly component)."""

    id: str
    name: str
    latest_version: int
    created_at: datetime
    updated_at: datetime
    active_version: int | None = None
    """The version that runs; ``None`` runs nothing."""


@dataclass(frozen=True, kw_only=True)
class FunctionVersion(Model):
    """One uploaded version of a function."""

    version: int
    events: list[str]
    digest: str
    size_bytes: int
    active: bool
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class FunctionDetail(Function):
    """A function with its versions, newest first."""

    versions: list[FunctionVersion]


@dataclass(frozen=True, kw_only=True)
class Deployment(Model):
    """A deployed version and its function."""

    function: Function
    version: FunctionVersion


@dataclass(frozen=True, kw_only=True)
class LogLine(Model):
    """A line a function logged."""

    level: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Invocation(Model):
    """One run of a function."""

    id: str
    version: int
    trigger: str
    """``joining``, ``event`` or ``invoke``."""
    event_type: str
    outcome: str
    duration_us: int
    fuel_used: int
    logs: list[LogLine]
    created_at: datetime
    event_id: str | None = None
    decision: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class LogEntry(Model):
    """A logged line with the invocation it came from."""

    invocation_id: str
    at: datetime
    version: int
    level: str
    message: str


@dataclass(frozen=True, kw_only=True)
class InvokeReport(Model):
    """A test run of a function on a sample event; its actions are listed, not applied."""

    invocation_id: str
    outcome: str
    duration_us: int
    fuel_used: int
    logs: list[LogLine]
    actions: list[str]
    decision: Any = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class KvEntry(Model):
    """A value of the project's key-value store."""

    key: str
    value: str


# -- recordings ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RoomRef(Model):
    """A room incarnation, by sid and name."""

    sid: str
    name: str


@dataclass(frozen=True, kw_only=True)
class RecordingFile(Model):
    """One file of a recording."""

    name: str
    content_type: str
    start_offset_ms: int
    duration_ms: int
    size_bytes: int
    participant: dict[str, Any] | None = None
    track: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Recording(Model):
    """A recording of a room."""

    id: str
    room: RoomRef
    mode: str
    """``tracks`` or ``composite``."""
    status: str
    """``starting``, ``active``, ``stopping``, ``processing``, ``finished`` or ``failed``."""
    created_at: datetime
    duration_ms: int
    files: list[RecordingFile]
    audio_only: bool = False
    tracks: list[str] | None = None
    identities: list[str] | None = None
    error: str | None = None
    progress: float | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class SignedUrl(Model):
    """A time-limited download URL (a path and query on the API's server)."""

    url: str
    expires_at: datetime


# -- usage and billing ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UsageBucket(Model):
    start: datetime
    quantity: int


@dataclass(frozen=True, kw_only=True)
class RoomQuantity(Model):
    quantity: int
    room: str | None = None


@dataclass(frozen=True, kw_only=True)
class MeterUsage(Model):
    """One meter over a usage report's window."""

    meter: str
    unit: str
    """``us`` (microseconds) or ``count``."""
    total: int
    billed_unit: str
    buckets: list[UsageBucket]
    rooms: list[RoomQuantity]
    seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class UsageReport(Model):
    """Usage by meter, bucket and room (``GET /v1/usage``)."""

    to: datetime
    granularity: str
    meters: list[MeterUsage]
    open_sessions: int
    from_: datetime | None = field(default=None, metadata={"json": "from"})
    """The window's start (``from`` in the JSON)."""


@dataclass(frozen=True, kw_only=True)
class Session(Model):
    """A participant session behind the usage numbers."""

    id: str
    room: str
    room_sid: str
    identity: str
    joined_at: datetime
    meter: str
    duration_us: int
    node: str | None = None
    left_at: datetime | None = None
    leave_reason: str | None = None
    billed_us: int | None = None


@dataclass(frozen=True, kw_only=True)
class QualitySample(Model):
    """One interval (about 3 s) of a session's connection."""

    at: datetime
    """When the interval ended."""
    quality: str
    """``excellent``, ``good``, ``poor`` or ``lost``."""
    publish_bps: int
    subscribe_bps: int
    loss_per_mille: int
    rtt_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class SessionQuality(Model):
    """A session's connection over the call (``GET /v1/usage/sessions/{sid}/quality``)."""

    participant_sid: str
    room_sid: str
    samples: list[QualitySample]
    """Oldest first."""


@dataclass(frozen=True, kw_only=True)
class InvoiceLine(Model):
    meter: str
    usage: int
    unit: str
    quantity: int
    allowance: int
    overage: int
    charge_cents: int
    unit_price_cents: str
    """A decimal number of cents, exact (``decimal.Decimal(line.unit_price_cents)``)."""
    amount_cents: str
    """``overage × unit_price_cents``, exact, as a decimal string."""


@dataclass(frozen=True, kw_only=True)
class Invoice(Model):
    plan: str
    lines: list[InvoiceLine]
    subtotal_cents: int
    minimum_top_up_cents: int
    total_cents: int
    minimum_cents: str
    """The plan's minimum for the period, a decimal string."""


@dataclass(frozen=True, kw_only=True)
class BillingPreview(Model):
    """The invoice of a billing period as it stands (``GET /v1/billing/preview``)."""

    period: str
    period_start: datetime
    period_end: datetime
    running: bool
    invoice: Invoice


@dataclass(frozen=True, kw_only=True)
class Suspension(Model):
    reason: str
    since: datetime


@dataclass(frozen=True, kw_only=True)
class StripeReport(Model):
    """One usage report sent (or being sent) to Stripe."""

    meter: str
    period: str
    window_end: datetime
    kind: str
    quantity: int
    amount_cents: int
    status: str
    attempts: int
    next_attempt_at: datetime
    idempotency_key: str
    last_error: str | None = None
    stripe_id: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class StripeAccount(Model):
    """The project's standing with Stripe (``GET /v1/billing/stripe``)."""

    reports: list[StripeReport]
    customer_id: str | None = None
    subscription_id: str | None = None
    suspension: Suspension | None = None


# -- project and API keys ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Project(Model):
    """The project the API key belongs to."""

    id: str
    name: str
    created_at: datetime
    function_failure_policy: str
    regions: list[str]


@dataclass(frozen=True, kw_only=True)
class ApiKey(Model):
    """An API key (without its secret)."""

    id: str
    description: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class CreatedApiKey(Model):
    """A new API key and its secret, shown this once."""

    id: str
    secret: str
    description: str
    created_at: datetime
