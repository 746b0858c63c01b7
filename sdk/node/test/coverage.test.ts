// Every operation of the server's OpenAPI document has an SDK method, and
// each method calls the operation it says it does.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Switchboard } from "@switchboard/server-sdk";

import { needsServer, serverUrl } from "./helpers.js";

/** Operations the server SDK leaves to others, and why. */
const LEFT_OUT: Record<string, string> = {
  "POST /v1/whip/rooms/{room}": "WHIP ingest: an encoder's SDP exchange with the media node, authenticated by an access token",
  "PATCH /v1/whip/sessions/{sid}": "WHIP ingest (trickle ICE)",
  "DELETE /v1/whip/sessions/{sid}": "WHIP ingest (hang up)",
  "POST /v1/whep/rooms/{room}/participants/{identity}": "WHEP playback: a player's SDP exchange with the media node",
  "PATCH /v1/whep/sessions/{sid}": "WHEP playback (trickle ICE)",
  "DELETE /v1/whep/sessions/{sid}": "WHEP playback (hang up)",
};

/** Each documented operation and an SDK call that makes it. */
const CALLS: Record<string, (sb: Switchboard) => Promise<unknown>> = {
  "GET /v1/api_keys": (sb) => sb.apiKeys.list(),
  "POST /v1/api_keys": (sb) => sb.apiKeys.create({ description: "d" }),
  "DELETE /v1/api_keys/{id}": (sb) => sb.apiKeys.revoke("k"),
  "GET /v1/billing/preview": (sb) => sb.billing.preview({ period: "2026-11" }),
  "GET /v1/billing/stripe": (sb) => sb.billing.stripe(),
  "GET /v1/events": async (sb) => sb.events.list(),
  "GET /v1/events/{id}": (sb) => sb.events.get("ev_1"),
  "GET /v1/events/{id}/deliveries": (sb) => sb.events.deliveries("ev_1"),
  "GET /v1/functions": async (sb) => sb.functions.list(),
  "GET /v1/functions/{name}": (sb) => sb.functions.get("f"),
  "DELETE /v1/functions/{name}": (sb) => sb.functions.delete("f"),
  "POST /v1/functions/{name}/activate": (sb) => sb.functions.activate("f", 2),
  "GET /v1/functions/{name}/invocations": async (sb) => sb.functions.invocations("f"),
  "POST /v1/functions/{name}/invoke": (sb) => sb.functions.invoke("f", { event: { type: "room.started", data: {} } }),
  "GET /v1/functions/{name}/logs": async (sb) => sb.functions.logs("f"),
  "GET /v1/functions/{name}/versions": (sb) => sb.functions.versions("f"),
  "POST /v1/functions/{name}/versions": (sb) => sb.functions.deploy("f", new Uint8Array([0, 97, 115, 109]), { events: ["room.*"] }),
  "GET /v1/kv/{key}": (sb) => sb.kv.get("k"),
  "PUT /v1/kv/{key}": (sb) => sb.kv.put("k", "v"),
  "DELETE /v1/kv/{key}": (sb) => sb.kv.delete("k"),
  "GET /v1/project": (sb) => sb.project.get(),
  "PATCH /v1/project": (sb) => sb.project.update({ regions: [] }),
  "GET /v1/recordings": async (sb) => sb.recordings.list({ room: "r" }),
  "GET /v1/recordings/{id}": (sb) => sb.recordings.get("rec_1"),
  "DELETE /v1/recordings/{id}": (sb) => sb.recordings.delete("rec_1"),
  "GET /v1/recordings/{id}/files/{file}": (sb) => sb.recordings.download("rec_1", "a.webm"),
  "POST /v1/recordings/{id}/files/{file}/url": (sb) => sb.recordings.signUrl("rec_1", "a.webm", { expires_in_s: 60 }),
  "POST /v1/recordings/{id}/stop": (sb) => sb.recordings.stop("rec_1"),
  "GET /v1/rooms": async (sb) => sb.rooms.list(),
  "POST /v1/rooms": (sb) => sb.rooms.create({ name: "r" }),
  "GET /v1/rooms/{name}": (sb) => sb.rooms.get("r"),
  "DELETE /v1/rooms/{name}": (sb) => sb.rooms.delete("r"),
  "PATCH /v1/rooms/{name}": (sb) => sb.rooms.update("r", { metadata: "m" }),
  "GET /v1/rooms/{name}/participants": (sb) => sb.participants.list("r"),
  "GET /v1/rooms/{name}/participants/{identity}": (sb) => sb.participants.get("r", "i"),
  "DELETE /v1/rooms/{name}/participants/{identity}": (sb) => sb.participants.remove("r", "i"),
  "PATCH /v1/rooms/{name}/participants/{identity}": (sb) => sb.participants.update("r", "i", { name: "n" }),
  "POST /v1/rooms/{name}/participants/{identity}/mute": (sb) =>
    sb.participants.mute("r", "i", { track_sid: "tr_1", muted: true }),
  "POST /v1/rooms/{name}/recordings": (sb) => sb.recordings.start("r", { mode: "tracks" }),
  "GET /v1/rtc/route": (sb) => sb.tokens.route("t"),
  "POST /v1/tokens": (sb) => sb.tokens.create({ room: "r", identity: "i" }),
  "GET /v1/usage": (sb) => sb.usage.get({ from: "2026-11-01" }),
  "GET /v1/usage/sessions": async (sb) => sb.usage.sessions(),
  "GET /v1/usage/sessions/{sid}/quality": (sb) => sb.usage.sessionQuality("pa_1"),
  "GET /v1/webhooks": async (sb) => sb.webhooks.list(),
  "POST /v1/webhooks": (sb) => sb.webhooks.create({ url: "https://example.com", events: ["*"] }),
  "POST /v1/webhooks/deliveries/{id}/retry": (sb) => sb.webhooks.retryDelivery("whd_1"),
  "GET /v1/webhooks/{id}": (sb) => sb.webhooks.get("wh_1"),
  "DELETE /v1/webhooks/{id}": (sb) => sb.webhooks.delete("wh_1"),
  "PATCH /v1/webhooks/{id}": (sb) => sb.webhooks.update("wh_1", { enabled: false }),
  "GET /v1/webhooks/{id}/deliveries": async (sb) => sb.webhooks.deliveries("wh_1"),
  "POST /v1/webhooks/{id}/replay": (sb) => sb.webhooks.replay("wh_1", { since: new Date(0) }),
  "POST /v1/webhooks/{id}/rotate-secret": (sb) => sb.webhooks.rotateSecret("wh_1"),
  "POST /v1/webhooks/{id}/test": (sb) => sb.webhooks.test("wh_1"),
};

test("each SDK method calls the operation it stands for", async () => {
  for (const [operation, call] of Object.entries(CALLS)) {
    const made: string[] = [];
    const sb = new Switchboard({
      url: "http://sdk.invalid",
      apiKey: "k",
      apiSecret: "s",
      fetch: async (input, init) => {
        made.push(`${init?.method} ${new URL(String(input)).pathname}`);
        return new Response(JSON.stringify({ data: [] }), { headers: { "content-type": "application/json" } });
      },
    });
    await call(sb);
    const [method, template] = operation.split(" ") as [string, string];
    const pattern = new RegExp(`^${method} ${template.replace(/\{[a-z_]+\}/g, "[^/]+")}$`);
    assert.equal(made.length, 1, operation);
    assert.match(made[0]!, pattern, operation);
  }
});

test("every operation of the served OpenAPI document is covered", { skip: needsServer }, async () => {
  const doc = (await (await fetch(`${serverUrl}/v1/openapi.json`)).json()) as {
    paths: Record<string, Record<string, unknown>>;
  };
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops)
      .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
  const missing = documented.filter((op) => !(op in CALLS) && !(op in LEFT_OUT));
  assert.deepEqual(missing, [], "operations without an SDK method: add them to the SDK and to CALLS");
  const gone = Object.keys(CALLS).filter((op) => !documented.includes(op));
  assert.deepEqual(gone, [], "SDK methods whose operation the document no longer has");
});
