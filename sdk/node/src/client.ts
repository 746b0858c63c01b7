import { Transport, type ClientOptions } from "./http.js";
import { Events } from "./resources/events.js";
import { Functions, Kv } from "./resources/functions.js";
import { Participants } from "./resources/participants.js";
import { ApiKeys, Project } from "./resources/project.js";
import { Recordings } from "./resources/recordings.js";
import { Rooms } from "./resources/rooms.js";
import { Tokens } from "./resources/tokens.js";
import { Billing, Usage } from "./resources/usage.js";
import { Webhooks } from "./resources/webhooks.js";

/**
 * A client of one Switchboard project, authenticated with one of its API
 * keys. Every resource of the REST API is a property:
 *
 * ```ts
 * const sb = new Switchboard({ url: "http://127.0.0.1:7880", apiKey: "devkey", apiSecret: "secret" });
 * const room = await sb.rooms.create({ name: "standup" });
 * ```
 *
 * Calls are retried on 429 (after `Retry-After`), 5xx and network errors;
 * every `POST` carries an `Idempotency-Key`, so a retried create acts once.
 * A failed call throws a {@link SwitchboardError} with the API's `code`.
 */
export class Switchboard {
  readonly rooms: Rooms;
  readonly participants: Participants;
  readonly tokens: Tokens;
  readonly webhooks: Webhooks;
  readonly events: Events;
  readonly functions: Functions;
  readonly kv: Kv;
  readonly recordings: Recordings;
  readonly usage: Usage;
  readonly billing: Billing;
  readonly project: Project;
  readonly apiKeys: ApiKeys;
  /** The server's base URL, without a trailing slash. */
  readonly url: string;

  constructor(options: ClientOptions = {}) {
    const http = new Transport(options);
    this.url = http.baseUrl;
    this.rooms = new Rooms(http);
    this.participants = new Participants(http);
    this.tokens = new Tokens(http);
    this.webhooks = new Webhooks(http);
    this.events = new Events(http);
    this.functions = new Functions(http);
    this.kv = new Kv(http);
    this.recordings = new Recordings(http);
    this.usage = new Usage(http);
    this.billing = new Billing(http);
    this.project = new Project(http);
    this.apiKeys = new ApiKeys(http);
  }
}
