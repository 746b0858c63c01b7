import { createHmac } from "node:crypto";

/** What the holder of an access token may do. */
export interface Grants {
  /** The only room the token can join (set from `room`; leave it out). */
  room?: string;
  /** May publish audio and video tracks (default true). */
  can_publish?: boolean;
  /** May subscribe to other participants' tracks (default true). */
  can_subscribe?: boolean;
  /** May send data messages (default true). */
  can_publish_data?: boolean;
  /** May mute, remove and update other participants of the room (default false). */
  room_admin?: boolean;
  /** May create the room by joining it when it does not exist yet (default false). */
  room_create?: boolean;
  /** Joins as a recorder: hidden from other participants, not billed as one (default false). */
  recorder?: boolean;
  /** May change its own name and metadata (default false). */
  can_update_metadata?: boolean;
}

/** An access token to sign. */
export interface AccessTokenOptions {
  /** The API key id; it signs the token and is its `kid` and `iss`. */
  apiKey: string;
  /** The API key's secret. */
  apiSecret: string;
  /** The room the token joins. */
  room: string;
  /** The participant's identity, unique in the room. */
  identity: string;
  /** Display name. */
  name?: string;
  /** Participant metadata, up to 4 KiB. */
  metadata?: string;
  /** What the participant may do; unset fields take their defaults. */
  grants?: Omit<Grants, "room">;
  /** Lifetime in seconds, 1 to 86400 (default 21600, six hours). */
  ttlSeconds?: number;
  /** When it is issued (default now); it is valid from then. */
  now?: Date;
}

/** The claims of an access token, as the server reads them. */
export interface AccessTokenClaims {
  /** The API key id that signed it. */
  iss: string;
  /** The participant identity. */
  sub: string;
  /** Expiry, seconds since the Unix epoch. */
  exp: number;
  /** Not valid before, seconds since the Unix epoch. */
  nbf: number;
  /** Issued at, seconds since the Unix epoch. */
  iat: number;
  name?: string;
  metadata?: string;
  grants: Required<Omit<Grants, "room" | "can_update_metadata">> & Pick<Grants, "room" | "can_update_metadata">;
}

/** Shortest lifetime accepted, in seconds. */
export const MIN_TTL_S = 1;
/** Longest lifetime accepted, in seconds (24 hours). */
export const MAX_TTL_S = 86_400;
/** Lifetime when none is given, in seconds (6 hours). */
export const DEFAULT_TTL_S = 21_600;
/** Largest `metadata` a token may carry, in bytes. */
export const MAX_TOKEN_METADATA_BYTES = 4096;
/** Longest room name or identity, in bytes. */
export const MAX_NAME_BYTES = 128;

/**
 * Signs an access token offline, as `switchboard token create` does: an
 * HS256 JWT whose header's `kid` names the API key, with the same claims
 * and defaults. The media node accepts it like one from `POST /v1/tokens`.
 */
export function signAccessToken(options: AccessTokenOptions): string {
  const { apiKey, apiSecret } = options;
  if (!apiKey || !apiSecret) throw new TypeError("apiKey and apiSecret are required to sign a token");
  checkName("room", options.room);
  checkName("identity", options.identity);
  const ttl = options.ttlSeconds ?? DEFAULT_TTL_S;
  if (!Number.isInteger(ttl) || ttl < MIN_TTL_S || ttl > MAX_TTL_S) {
    throw new RangeError(`ttlSeconds must be an integer between ${MIN_TTL_S} and ${MAX_TTL_S}, got ${ttl}`);
  }
  if (options.metadata !== undefined && Buffer.byteLength(options.metadata) > MAX_TOKEN_METADATA_BYTES) {
    throw new RangeError(`token metadata is ${Buffer.byteLength(options.metadata)} bytes; the limit is ${MAX_TOKEN_METADATA_BYTES}`);
  }
  const g = options.grants ?? {};
  if ("room" in g) throw new TypeError("give the room as `room`, not in `grants`");
  const iat = Math.floor((options.now ?? new Date()).getTime() / 1000);
  // Field order and omissions as the server serializes its own claims.
  const claims: AccessTokenClaims = {
    iss: apiKey,
    sub: options.identity,
    exp: iat + ttl,
    nbf: iat,
    iat,
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
    grants: {
      room: options.room,
      can_publish: g.can_publish ?? true,
      can_subscribe: g.can_subscribe ?? true,
      can_publish_data: g.can_publish_data ?? true,
      room_admin: g.room_admin ?? false,
      room_create: g.room_create ?? false,
      recorder: g.recorder ?? false,
      ...(g.can_update_metadata ? { can_update_metadata: true } : {}),
    },
  };
  const header = { typ: "JWT", alg: "HS256", kid: apiKey };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = createHmac("sha256", apiSecret).update(input).digest("base64url");
  return `${input}.${signature}`;
}

/**
 * The claims of a token, read without checking its signature: for showing
 * or debugging a token, never for trusting one.
 */
export function decodeAccessToken(token: string): AccessTokenClaims {
  const part = token.split(".")[1];
  if (!part) throw new TypeError("not a JWT");
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as AccessTokenClaims;
}

function b64url(text: string): string {
  return Buffer.from(text, "utf8").toString("base64url");
}

/** The server's rule for room names and identities. */
function checkName(what: string, value: string): void {
  if (typeof value !== "string" || value.length === 0) throw new TypeError(`${what} must not be empty`);
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_NAME_BYTES) throw new RangeError(`${what} is ${bytes} bytes long; the limit is ${MAX_NAME_BYTES} bytes`);
  // Unicode's control characters (category Cc), as Rust's `char::is_control`.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) throw new TypeError(`${what} must not contain control characters`);
}
