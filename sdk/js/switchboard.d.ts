// Type declarations for switchboard.js, the Switchboard browser SDK.
// Written by hand from switchboard.js and docs/signaling.md: keep them in step.

/** Audio or video. */
export type TrackKind = 'audio' | 'video';

/** Where a track's media comes from. */
export type TrackSource = 'camera' | 'microphone' | 'screen_share' | 'screen_share_audio' | 'unknown';

/** A simulcast layer a subscriber may cap a video track at. */
export type Layer = 'low' | 'medium' | 'high';

/** How well a participant's connection carries media. */
export type ConnectionQuality = 'excellent' | 'good' | 'poor' | 'lost';

/** Whether a participant's media is flowing. */
export type ParticipantState = 'joining' | 'active' | 'reconnecting';

/** Why another participant left, as `participant_left` reports it. */
export type LeaveReason =
  | 'client_left'
  | 'connection_lost'
  | 'removed'
  | 'room_closed'
  | 'duplicate_identity'
  | 'node_lost'
  /** Gone when this client resumed its session after a dropped socket. */
  | 'left_while_reconnecting';

/** What a participant may do right now (initially from its token's grants). */
export interface ParticipantPermissions {
  can_publish: boolean;
  can_subscribe: boolean;
  can_publish_data: boolean;
}

/** A published track, as the server describes it. */
export interface TrackInfo {
  /** The track id (`tr_…`). */
  sid: string;
  kind: TrackKind;
  source: TrackSource;
  /** The negotiated codec, such as `video/VP8`; null until negotiated. */
  mime_type: string | null;
  /** Muted by its publisher or an admin. */
  muted: boolean;
  /** Published with simulcast layers. */
  simulcast: boolean;
}

/** A participant's connection, measured over the last few seconds. */
export interface ConnectionStats {
  quality: ConnectionQuality;
  /** Media it sends to the server, bits per second. */
  publish_bps: number;
  /** Media the server sends it, bits per second. */
  subscribe_bps: number;
  /** Packets lost per thousand, the worse of both directions. */
  loss_per_mille: number;
  /** Round trip in milliseconds, once measured. */
  rtt_ms: number | null;
}

/** A participant connected to a room. */
export interface ParticipantInfo {
  /** This session (`pa_…`). */
  sid: string;
  /** The identity from the access token. */
  identity: string;
  /** Display name. */
  name: string;
  /** Free-form data, up to 64 KiB. */
  metadata: string;
  state: ParticipantState;
  /** When this session joined (RFC 3339). */
  joined_at: string;
  permissions: ParticipantPermissions;
  /** Tracks it publishes. */
  tracks: TrackInfo[];
  /** How its connection is doing, once measured. */
  connection?: ConnectionStats;
}

/** The room as the server's `join` describes it. */
export interface RoomSummary {
  /** This incarnation of the room (`rm_…`). */
  sid: string;
  name: string;
  metadata: string;
}

/** A participant's audio level, in `active_speakers`. */
export interface SpeakerLevel {
  /** The participant's sid. */
  sid: string;
  /** 0.0 (silent) to 1.0 (loudest), linear. */
  level: number;
}

/** One participant's connection quality, in `connection_quality`. */
export interface QualityUpdate {
  /** The participant's sid. */
  sid: string;
  quality: ConnectionQuality;
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /**
   * The `route_url` returned by `POST /v1/tokens`. With it, when the room's
   * media node dies, the SDK asks where the room is now and joins there with
   * the same token (for up to 30 s).
   */
  routeUrl?: string;
  /**
   * Kept in `room.options` (default true) but not read by the SDK: the server
   * subscribes every participant to every track; use {@link Room.subscribe}
   * to opt out of some.
   */
  autoSubscribe?: boolean;
}

/** Options of {@link Room.publishTrack}. */
export interface PublishOptions {
  /** Defaults to `microphone` for audio tracks and `camera` for video tracks. */
  source?: TrackSource;
  /** A label for the track. */
  name?: string;
  /** Sends a video track as three simulcast layers (quarter, half and full resolution). Default false. */
  simulcast?: boolean;
}

/** One of this participant's published tracks. */
export interface LocalTrack {
  /** The track id the server gave it. */
  sid: string;
  track: MediaStreamTrack;
  sender: RTCRtpSender;
  /** The track as the server accepted it. */
  info: TrackInfo;
}

/** A remote participant the SDK has no description of yet: only its sid is known. */
export interface UnknownParticipant {
  sid: string | null;
}

/** The payload of `track_subscribed` and `track_unsubscribed`. */
export interface TrackSubscription {
  /** The remote track: attach it with `new MediaStream([track])`. */
  track: MediaStreamTrack;
  /** The publisher's stream (its id is the publisher's sid). */
  stream: MediaStream | undefined;
  participant: ParticipantInfo | UnknownParticipant;
  /** The track's description, or what the browser knows of it before the server described it. */
  trackInfo: TrackInfo | { sid: string; kind: string };
  transceiver: RTCRtpTransceiver;
}

/** A data message another participant (or the server) sent. */
export interface DataMessage {
  /** The sender's identity; null for messages the server sends. */
  from: string | null;
  topic: string | null | undefined;
  payload: string;
  /** Whether it came over the reliable (ordered) channel or the lossy one. */
  reliable: boolean;
}

/** Each event of a {@link Room} and the arguments its handlers get. */
export interface RoomEvents {
  /** Someone joined the room. */
  participant_joined: (participant: ParticipantInfo) => void;
  /** Someone left the room. */
  participant_left: (participant: ParticipantInfo | { sid: string; identity: string }, reason: LeaveReason) => void;
  /** A participant's (possibly this one's) name, metadata or permissions changed. */
  participant_updated: (participant: ParticipantInfo) => void;
  /** Another participant published a track (`participant` is undefined if it is not yet known). */
  track_published: (event: { participant: ParticipantInfo | undefined; track: TrackInfo }) => void;
  /** A track is gone (also sent for one's own tracks the server ended). */
  track_unpublished: (event: { participantSid: string; trackSid: string }) => void;
  /** A remote track arrived on the subscriber connection. */
  track_subscribed: (event: TrackSubscription) => void;
  /** A remote track ended. */
  track_unsubscribed: (event: TrackSubscription) => void;
  /** A track was muted or unmuted, by its publisher or an admin. */
  track_muted: (event: { participantSid: string; trackSid: string; muted: boolean }) => void;
  /** Who is speaking, loudest first; `[]` when everyone stopped. */
  active_speakers: (speakers: SpeakerLevel[]) => void;
  /** Participants whose connection quality changed (checked every 3 s). */
  connection_quality: (updates: QualityUpdate[]) => void;
  /** A data message arrived. */
  data: (message: DataMessage) => void;
  /** The socket dropped; the SDK is trying to get the session back (for up to 30 s). */
  reconnecting: () => void;
  /** Back in the room: the same session resumed, or a new one with the tracks published again. */
  reconnected: () => void;
  /** The SDK is restarting ICE (network change, failed connection, or {@link Room.restartIce}). */
  ice_restart: () => void;
  /**
   * The session is over: `client_left` after {@link Room.leave}, the server's
   * reason (`removed`, `room_closed`, `duplicate_identity`, `server_shutdown`),
   * the socket's close reason, or `connection_lost` when reconnecting gave up.
   */
  disconnected: (reason: string) => void;
  /** The server refused a message, or negotiation or signaling failed. */
  error: (error: SwitchboardError) => void;
}

/** An error the server or the SDK reports, with a stable code. */
export class SwitchboardError extends Error {
  constructor(code: string, message: string);
  /**
   * SDK codes: `connection_failed`, `closed`, `signaling_failed`,
   * `negotiation_failed`, `republish_failed`, `data_too_large`,
   * `data_not_ready`; otherwise the server's (`not_allowed`,
   * `muted_by_server`, `data_rejected`, `rate_limited`, `ice_timeout`, …).
   */
  code: string;
}

/**
 * Connects to a room with an access token and resolves once joined.
 * `url` is the `url` returned by `POST /v1/tokens` (`ws://host/rtc`).
 * Rejects with a {@link SwitchboardError} (`connection_failed` or `closed`)
 * when the join is refused.
 */
export function connect(url: string, token: string, options?: ConnectOptions): Promise<Room>;

/** A joined room. Get one from {@link connect}. */
export class Room {
  /** Made by {@link connect}; a Room constructed directly is not connected. */
  constructor(url: string, token: string, options?: ConnectOptions);

  /** The media node's signaling URL (changes if the room moves to another node). */
  url: string;
  /** The access token. */
  token: string;
  options: ConnectOptions & { autoSubscribe: boolean };
  /** The room, as of the join. */
  room: RoomSummary;
  /** Remote participants by sid. */
  participants: Map<string, ParticipantInfo>;
  /** This participant as the server describes it (null before the join). */
  localParticipant: ParticipantInfo | null;
  /** This participant's published tracks by sid. */
  localTracks: Map<string, LocalTrack>;
  /** The connection this participant publishes on (null before the join). */
  publisher: RTCPeerConnection | null;
  /** The connection others' media arrives on (null before the join). */
  subscriber: RTCPeerConnection | null;

  /** Registers `fn` for `event`; returns a function that removes it. */
  on<E extends keyof RoomEvents>(event: E, fn: RoomEvents[E]): () => boolean;
  /** Calls `event`'s handlers (the SDK's own use; a handler that throws is logged). */
  emit<E extends keyof RoomEvents>(event: E, ...args: Parameters<RoomEvents[E]>): void;

  /** Publishes a track; resolves once the server accepted it. */
  publishTrack(track: MediaStreamTrack, options?: PublishOptions): Promise<LocalTrack>;
  /** Publishes the camera (getUserMedia video with `constraints`). */
  publishCamera(constraints?: boolean | MediaTrackConstraints, options?: PublishOptions): Promise<LocalTrack>;
  /** Publishes the microphone (getUserMedia audio with `constraints`). */
  publishMicrophone(constraints?: boolean | MediaTrackConstraints): Promise<LocalTrack>;
  /** Publishes a screen share (getDisplayMedia): its video, and its audio if any. */
  publishScreen(): Promise<LocalTrack[]>;
  /** Mutes or unmutes one of this participant's tracks. */
  setMuted(trackSid: string, muted: boolean): void;
  /** Subscribes to (or, with `subscribe` false, unsubscribes from) tracks. */
  subscribe(trackSids: string[], subscribe?: boolean): void;
  /** Caps the simulcast layer received for a video track. */
  setLayer(trackSid: string, layer: Layer): void;
  /** Changes this participant's metadata and/or name (needs the `can_update_metadata` grant). */
  updateMetadata(update: { metadata?: string; name?: string }): void;
  /** Removes another participant (needs `room_admin`). */
  removeParticipant(identity: string): void;
  /** Mutes (default) or unmutes another participant's track; its publisher cannot undo it (needs `room_admin`). */
  muteParticipant(identity: string, trackSid: string, muted?: boolean): void;
  /** Changes another participant's name, metadata or permissions (needs `room_admin`). */
  updateParticipant(
    identity: string,
    update?: { name?: string; metadata?: string; permissions?: ParticipantPermissions },
  ): void;
  /**
   * Sends a data message to everyone else (at most 15 KiB with its topic);
   * `reliable: false` uses the lossy channel. Throws a {@link SwitchboardError}
   * (`data_too_large`, `data_not_ready`) when it cannot be sent.
   */
  sendData(payload: string, options?: { reliable?: boolean; topic?: string }): void;
  /** Restarts ICE on both connections (new credentials, same participant and tracks). */
  restartIce(): Promise<void>;
  /** Leaves the room; `disconnected` follows with `client_left`. */
  leave(): void;
}
