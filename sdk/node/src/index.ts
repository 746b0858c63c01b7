/**
 * The Switchboard server SDK: a typed client of the REST API, access tokens
 * signed offline, and verification of webhook deliveries.
 *
 * @packageDocumentation
 */

export { Switchboard } from "./client.js";
export { SwitchboardError, type ErrorBody } from "./errors.js";
export type { ClientOptions, RequestOptions } from "./http.js";
export { PageRequest, type Page, type PageParams } from "./pagination.js";
export {
  signAccessToken,
  decodeAccessToken,
  DEFAULT_TTL_S,
  MAX_TTL_S,
  MIN_TTL_S,
  type AccessTokenClaims,
  type AccessTokenOptions,
  type Grants,
} from "./token.js";
export { WebhookVerifier, WebhookVerificationError, verifyWebhook, type IncomingHeaders } from "./webhook.js";
export * from "./types.js";
export type { Rooms } from "./resources/rooms.js";
export type { Participants } from "./resources/participants.js";
export type { Tokens } from "./resources/tokens.js";
export type { Webhooks } from "./resources/webhooks.js";
export type { Events } from "./resources/events.js";
export type { Functions, Kv } from "./resources/functions.js";
export type { Recordings } from "./resources/recordings.js";
export type { Usage, Billing } from "./resources/usage.js";
export type { Project, ApiKeys } from "./resources/project.js";
