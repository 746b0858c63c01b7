// The API's JSON shapes, field for field as the server sends them (snake_case,
// `null` where the server writes null, optional where it leaves a field out).

import type { Grants } from "./token.js";

/** An RFC 3339 time, such as `2026-11-23T12:13:20.123456Z`. */
export type Timestamp = string;

// ---- rooms and participants ----

/** A room. */
export interface Room {
  /** This incarnation of the room (`rm_...`). */
  sid: string;
  /** Its name, unique within the project. */
  name: string;
  created_at: Timestamp;
  /** Seconds the room stays open after its last participant leaves. */
  empty_timeout_s: number;
  /** Most participants at once; 0 means no limit. */
  max_participants: number;
  /** Free-form data the app attaches, up to 64 KiB. */
  metadata: string;
  /** Where the app would like the room hosted, such as `eu-west`. */
  region: string | null;
  /** Whether every track is recorded (`tracks` mode) from the first one published. */
  record: boolean;
  /** Participants connected right now. */
  num_participants: number;
}

/** Body of `rooms.create`. */
export interface CreateRoom {
  /** Unique in the project; generated when absent. */
  name?: string;
  /** Seconds the room stays open after its last participant leaves (default 300, at most 86400). */
  empty_timeout_s?: number;
  /** Most participants at once; 0 or absent means no limit. */
  max_participants?: number;
  /** Free-form data for the app, up to 64 KiB. */
  metadata?: string;
  /** Preferred region of the media node, such as `eu-west`. */
  region?: string;
  /** Record every track (`tracks` mode) from the first one published (default false). */
  record?: boolean;
}

/** Body of `rooms.update`. */
export interface UpdateRoom {
  metadata?: string;
  empty_timeout_s?: number;
  /** 0 means no limit. */
  max_participants?: number;
}

export type ParticipantState = "joining" | "active" | "reconnecting";
export type TrackKind = "audio" | "video";
export type TrackSource = "camera" | "microphone" | "screen_share" | "screen_share_audio" | "unknown";
export type ConnectionQuality = "excellent" | "good" | "poor" | "lost";

/** What a participant may do right now. */
export interface ParticipantPermissions {
  can_publish: boolean;
  can_subscribe: boolean;
  can_publish_data: boolean;
}

/** A published track. */
export interface TrackInfo {
  /** `tr_...` */
  sid: string;
  kind: TrackKind;
  source: TrackSource;
  /** The negotiated codec, such as `video/VP8`. */
  mime_type: string | null;
  muted: boolean;
  simulcast: boolean;
}

/** A participant's connection, measured over the last few seconds. */
export interface ConnectionStats {
  quality: ConnectionQuality;
  publish_bps: number;
  subscribe_bps: number;
  loss_per_mille: number;
  rtt_ms: number | null;
}

/** A participant connected to a room. */
export interface Participant {
  /** This session (`pa_...`). */
  sid: string;
  /** The identity from the token. */
  identity: string;
  name: string;
  metadata: string;
  state: ParticipantState;
  joined_at: Timestamp;
  permissions: ParticipantPermissions;
  tracks: TrackInfo[];
  /** How its connection is doing, once measured. */
  connection?: ConnectionStats;
}

/** Body of `participants.update`. */
export interface UpdateParticipant {
  metadata?: string;
  name?: string;
  permissions?: ParticipantPermissions;
}

// ---- tokens ----

/** Body of `tokens.create` (a token the server signs). */
export interface CreateToken {
  room: string;
  identity: string;
  name?: string;
  /** Up to 4 KiB. */
  metadata?: string;
  grants?: Omit<Grants, "room">;
  /** 1 to 86400 (default 21600). */
  ttl_s?: number;
  /** Region to host the room in when it has none and is not live yet. */
  region?: string;
  /** The end user's IP address, to place the room near it. */
  client_ip?: string;
}

/** A token the server signed. */
export interface TokenResponse {
  /** The JWT. */
  token: string;
  /** The media node's signaling WebSocket URL to connect to with the token. */
  url: string;
  /** Where a client whose node stopped answering asks for the room's node now. */
  route_url: string;
  expires_at: Timestamp;
}

/** Where a token connects now (`GET /v1/rtc/route`). */
export interface RouteResponse {
  /** The signaling WebSocket URL of the media node that hosts the room. */
  url: string;
  region: string;
}

// ---- events ----

export interface RoomRef {
  sid: string;
  name: string;
}

export interface ParticipantRef {
  sid: string;
  identity: string;
}

export interface TrackRef {
  sid: string;
  kind: TrackKind;
  source: TrackSource;
  mime_type?: string;
}

export type LeaveReason =
  | "client_left"
  | "connection_lost"
  | "removed"
  | "room_closed"
  | "duplicate_identity"
  | "node_lost";

export type RoomFinishReason = "deleted" | "empty_timeout" | "node_lost";

/** How a session's connection went, summed up when it ends. */
export interface QualitySummary {
  measured_s: number;
  publish_bps: number;
  subscribe_bps: number;
  loss_per_mille: number;
  rtt_ms?: number;
  poor_s: number;
  worst_minute: { started_at: Timestamp; loss_per_mille: number; rtt_ms?: number };
}

/** The `data` of each event type, by type. */
export interface EventData {
  "room.started": { room: RoomRef };
  "room.finished": { room: RoomRef; reason: RoomFinishReason };
  "participant.joined": { room: RoomRef; participant: ParticipantRef; node?: string };
  "participant.left": { room: RoomRef; participant: ParticipantRef; reason: LeaveReason };
  "participant.quality_summary": { room: RoomRef; participant: ParticipantRef; quality: QualitySummary };
  "track.published": { room: RoomRef; participant: ParticipantRef; track: TrackRef };
  "track.unpublished": { room: RoomRef; participant: ParticipantRef; track: TrackRef };
  "recording.started": { room: RoomRef; recording_id: string; mode: RecordingMode };
  "recording.finished": {
    room: RoomRef;
    recording_id: string;
    mode: RecordingMode;
    location: string;
    duration_ms: number;
    files: RecordingFile[];
  };
  "recording.failed": { room: RoomRef; recording_id: string; error: string; files: RecordingFile[] };
  "function.deployed": { function_id: string; version: number };
  "function.event": { function: string; name: string; data: unknown; chain?: number };
  "webhook.disabled": { webhook_id: string };
  "webhook.test": { webhook_id: string };
}

/** An event type, such as `participant.joined`. */
export type EventType = keyof EventData;

/** Every event type, in catalogue order. */
export const EVENT_TYPES: readonly EventType[] = [
  "room.started",
  "room.finished",
  "participant.joined",
  "participant.left",
  "participant.quality_summary",
  "track.published",
  "track.unpublished",
  "recording.started",
  "recording.finished",
  "recording.failed",
  "function.deployed",
  "function.event",
  "webhook.disabled",
  "webhook.test",
];

/**
 * An entry of the project's event log, as `events.list` returns it and a
 * webhook delivers it; narrow it on `type` to get its `data`.
 */
export type Event = {
  [T in EventType]: {
    /** `ev_...`; also the `webhook-id` header of its deliveries. */
    id: string;
    project_id: string;
    /** Its position in the project's log: gap-free and increasing. */
    seq: number;
    created_at: Timestamp;
    type: T;
    data: EventData[T];
  };
}[EventType];

/** Filters of `events.list`. */
export interface ListEvents {
  /** Only this event type. */
  type?: EventType;
  /** Only events about the room with this name. */
  room?: string;
  /** Only events at or after this time. */
  since?: Date | string;
}

// ---- webhooks ----

/** A webhook endpoint (without its secret). */
export interface WebhookEndpoint {
  /** `wh_...` */
  id: string;
  url: string;
  /** Event types it receives: names, `prefix.*` or `*`. */
  events: string[];
  description: string;
  enabled: boolean;
  /** Why the server disabled it, if it did. */
  disabled_reason: string | null;
  /** Since when every attempt has failed, if the last one did. */
  failing_since: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** A new endpoint with its signing secret, shown this once. */
export interface CreatedWebhook extends WebhookEndpoint {
  /** The Standard Webhooks signing secret (`whsec_...`): store it now. */
  secret: string;
}

/** Body of `webhooks.create`. */
export interface CreateWebhook {
  /** `https://...` (`http://` only in dev mode). */
  url: string;
  /** Such as `["participant.joined", "room.*"]`; `["*"]` for all. */
  events: string[];
  /** Up to 512 bytes. */
  description?: string;
  /** Default true. */
  enabled?: boolean;
}

/** Body of `webhooks.update`. */
export interface UpdateWebhook {
  url?: string;
  events?: string[];
  description?: string;
  /** Enabling a disabled endpoint clears its failure record. */
  enabled?: boolean;
}

/** A new secret after a rotation. */
export interface RotatedSecret {
  secret: string;
  /** Until when the previous secret also signs every delivery. */
  previous_secret_expires_at: Timestamp;
}

/** One HTTP attempt of a delivery. */
export interface DeliveryAttempt {
  id: string;
  attempted_at: Timestamp;
  status_code: number | null;
  latency_ms: number;
  /** The first 2 KiB of the response body. */
  response_body: string;
  error: string | null;
  succeeded: boolean;
}

/** One event's delivery to one endpoint, with its attempts. */
export interface Delivery {
  /** `whd_...` */
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  /** `event` (from the log) or `replay`. */
  origin: "event" | "replay";
  status: "pending" | "succeeded" | "failed";
  next_attempt_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** Oldest first. */
  attempts: DeliveryAttempt[];
}

// ---- functions ----

export interface FunctionInfo {
  /** `fn_...` */
  id: string;
  name: string;
  /** The version that runs; null runs nothing. */
  active_version: number | null;
  latest_version: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface FunctionVersion {
  version: number;
  /** The events that run it. */
  events: string[];
  /** SHA-256 of the component, hex. */
  digest: string;
  size_bytes: number;
  active: boolean;
  created_at: Timestamp;
}

export interface FunctionDetail extends FunctionInfo {
  /** Newest first. */
  versions: FunctionVersion[];
}

export interface Deployment {
  function: FunctionInfo;
  version: FunctionVersion;
}

/** Query of `functions.deploy`. */
export interface DeployOptions {
  /** `participant.joining` and/or catalogue event types (`participant.joined`, `room.*`, `*`). */
  events: string[];
  /** Make it the active version (default true). */
  activate?: boolean;
}

export interface LogLine {
  /** `debug`, `info`, `warn`, `error`, `stdout` or `stderr`. */
  level: string;
  message: string;
}

export interface Invocation {
  /** `fni_...` */
  id: string;
  version: number;
  /** `joining`, `event` or `invoke`. */
  trigger: string;
  event_id: string | null;
  event_type: string;
  /** `ok`, `error`, `trap`, `timeout`, `out_of_fuel`, `out_of_memory`, `stack_overflow` or `busy`. */
  outcome: string;
  /** `allow`, `deny` or `admit`, for the join hook. */
  decision: string | null;
  error: string | null;
  duration_us: number;
  fuel_used: number;
  logs: LogLine[];
  created_at: Timestamp;
}

export interface FunctionLogEntry {
  invocation_id: string;
  at: Timestamp;
  version: number;
  level: string;
  message: string;
}

/** Body of `functions.invoke`: a test run on a sample event. */
export interface InvokeFunction {
  /** Default: the active version. */
  version?: number;
  event: {
    /** `participant.joining` or a catalogue type. */
    type: string;
    /** Its `data`, as webhooks receive it. */
    data: unknown;
  };
}

export interface InvokeReport {
  invocation_id: string;
  outcome: string;
  /** For `participant.joining`: `{"allow": {}}`, `{"deny": {"reason"}}` or `{"admit": {...}}`. */
  decision: unknown;
  error: string | null;
  duration_us: number;
  fuel_used: number;
  logs: LogLine[];
  /** The actions it asked for; a test run does not apply them. */
  actions: string[];
}

/** A stored value of the functions' key-value store. */
export interface KvEntry {
  key: string;
  value: string;
}

// ---- recordings ----

export type RecordingMode = "tracks" | "composite";
export type RecordingStatus = "starting" | "active" | "stopping" | "processing" | "finished" | "failed";

/** What to record. */
export interface RecordingSpec {
  /** `tracks` (each track to its own file) or `composite` (one MP4). */
  mode: RecordingMode;
  audio_only?: boolean;
  /** Only these tracks (all when absent). */
  tracks?: string[];
  /** Only these participants' tracks (everyone's when absent). */
  identities?: string[];
}

export interface RecordingFile {
  name: string;
  content_type: string;
  participant?: ParticipantRef;
  track?: TrackRef;
  start_offset_ms: number;
  duration_ms: number;
  size_bytes: number;
  error?: string;
}

export interface Recording {
  /** `rec_...` */
  id: string;
  room: RoomRef;
  mode: RecordingMode;
  audio_only: boolean;
  tracks?: string[];
  identities?: string[];
  status: RecordingStatus;
  error?: string;
  /** While `processing`: from 0 to 1. */
  progress?: number;
  created_at: Timestamp;
  started_at?: Timestamp;
  ended_at?: Timestamp;
  duration_ms: number;
  files: RecordingFile[];
}

export interface SignedUrl {
  /** The path and query to GET on the server, without credentials. */
  url: string;
  expires_at: Timestamp;
}

// ---- usage and billing ----

export type Meter =
  | "participant_minutes_audio"
  | "participant_minutes_video"
  | "recording_minutes"
  | "function_invocations"
  | "function_compute";

export type Granularity = "hour" | "day" | "month";

/** Query of `usage.get`. */
export interface UsageQuery {
  /** On the hour: a `Date`, RFC 3339 or a date (`2026-11-01`). Default: the current period's start. */
  from?: Date | string;
  /** End (exclusive), as `from`. Default: the end of the current hour. */
  to?: Date | string;
  /** Default `day`. */
  granularity?: Granularity;
  meter?: Meter;
}

export interface MeterUsage {
  meter: Meter;
  /** `us` (microseconds) or `count`. */
  unit: string;
  total: number;
  /** For time meters, `total` in seconds. */
  seconds: number | null;
  billed_unit: string;
  buckets: { start: Timestamp; quantity: number }[];
  /** Largest first; `room` is null for usage tied to no room. */
  rooms: { room: string | null; quantity: number }[];
}

export interface UsageReport {
  from: Timestamp;
  to: Timestamp;
  granularity: Granularity;
  meters: MeterUsage[];
  open_sessions: number;
}

/** Filters of `usage.sessions`. */
export interface ListSessions {
  room?: string;
  /** Only sessions still open at or after this time. */
  from?: Date | string;
  /** Only sessions that joined before this time. */
  to?: Date | string;
}

export interface Session {
  /** The participant session sid (`pa_...`). */
  id: string;
  room: string;
  room_sid: string;
  identity: string;
  node: string | null;
  joined_at: Timestamp;
  left_at: Timestamp | null;
  leave_reason: string | null;
  meter: Meter;
  duration_us: number;
  /** Null while open. */
  billed_us: number | null;
}

export interface SessionQuality {
  participant_sid: string;
  room_sid: string;
  /** About every 3 s, oldest first. */
  samples: (ConnectionStats & { at: Timestamp })[];
}

export interface InvoiceLine {
  meter: Meter;
  usage: number;
  unit: string;
  quantity: number;
  allowance: number;
  overage: number;
  /** A decimal, as a string. */
  unit_price_cents: string;
  /** A decimal, as a string. */
  amount_cents: string;
  charge_cents: number;
}

export interface Invoice {
  plan: string;
  lines: InvoiceLine[];
  subtotal_cents: number;
  /** A decimal, as a string. */
  minimum_cents: string;
  minimum_top_up_cents: number;
  total_cents: number;
}

export interface BillingPreview {
  /** `YYYY-MM` */
  period: string;
  period_start: Timestamp;
  period_end: Timestamp;
  running: boolean;
  invoice: Invoice;
}

export interface StripeReport {
  meter: string;
  period: string;
  window_end: Timestamp;
  kind: string;
  quantity: number;
  amount_cents: number;
  status: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: Timestamp;
  idempotency_key: string;
  stripe_id: string | null;
  sent_at: Timestamp | null;
}

export interface StripeAccount {
  customer_id: string | null;
  subscription_id: string | null;
  suspension: { reason: string; since: Timestamp } | null;
  reports: StripeReport[];
}

// ---- project and API keys ----

export interface Project {
  id: string;
  name: string;
  created_at: Timestamp;
  /** What happens to a join when a `participant.joining` function fails. */
  function_failure_policy: "open" | "closed";
  /** The regions its rooms may be hosted in; empty: any region. */
  regions: string[];
}

export interface UpdateProject {
  function_failure_policy?: "open" | "closed";
  /** `[]` lifts the restriction. */
  regions?: string[];
}

export interface ApiKey {
  id: string;
  description: string;
  created_at: Timestamp;
  revoked_at: Timestamp | null;
}

export interface CreatedApiKey {
  id: string;
  /** Shown this once. */
  secret: string;
  description: string;
  created_at: Timestamp;
}
