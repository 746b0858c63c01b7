// The SDK against a real Switchboard server (SWITCHBOARD_URL, with its API
// key and secret): rooms, a token signed here that the media node admits,
// a real webhook delivery verified with the SDK, and paging through events.

import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import WebSocket from "ws";

import {
  signAccessToken,
  SwitchboardError,
  WebhookVerificationError,
  WebhookVerifier,
  type Event,
} from "@switchboard/server-sdk";

import { client, eventually, needsServer, unique } from "./helpers.js";

/** Joins a room over the media node's signaling WebSocket; resolves with the `join` message. */
function join(url: string, token: string): Promise<{ socket: WebSocket; message: any }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url}?access_token=${encodeURIComponent(token)}`);
    socket.once("message", (data) => resolve({ socket, message: JSON.parse(data.toString()) }));
    socket.once("unexpected-response", (_req, res) => reject(new Error(`the node refused the socket: ${res.statusCode}`)));
    socket.once("error", reject);
    socket.once("close", (code, reason) => reject(new Error(`closed before joining: ${code} ${reason}`)));
  });
}

function leave(socket: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    socket.once("close", () => resolve());
    socket.close();
  });
}

test("rooms are created, read, changed, listed page by page and deleted", { skip: needsServer }, async () => {
  const sb = client();
  const prefix = unique("rooms");
  const names = [1, 2, 3].map((i) => `${prefix}-${i}`);
  for (const name of names) await sb.rooms.create({ name, metadata: "m", empty_timeout_s: 60 });
  const room = await sb.rooms.get(names[0]!);
  assert.equal(room.name, names[0]);
  assert.match(room.sid, /^rm_/);
  assert.equal(room.empty_timeout_s, 60);
  assert.equal((await sb.rooms.update(names[0]!, { metadata: "changed" })).metadata, "changed");

  // Two rooms a page: the loop fetches as many pages as there are rooms.
  const listed: string[] = [];
  let pages = 0;
  for await (const page of sb.rooms.list({ limit: 2 }).pages()) {
    pages++;
    assert.ok(page.data.length <= 2);
    listed.push(...page.data.map((r) => r.name));
  }
  assert.deepEqual(listed.filter((n) => n.startsWith(prefix)), names);
  assert.ok(pages >= 2, `${pages} pages`);
  const first = await sb.rooms.list({ limit: 1 });
  assert.equal(first.data.length, 1);
  assert.ok(first.next_cursor);

  for (const name of names) await sb.rooms.delete(name);
  await assert.rejects(sb.rooms.get(names[0]!), (e: unknown) => {
    assert.ok(e instanceof SwitchboardError);
    assert.equal(e.status, 404);
    assert.equal(e.code, "room_not_found");
    assert.ok(e.requestId, "the server's request id comes along");
    return true;
  });
});

test("a create repeated with its idempotency key acts once", { skip: needsServer }, async () => {
  const sb = client();
  const name = unique("once");
  const key = unique("key");
  const a = await sb.rooms.create({ name }, { idempotencyKey: key });
  const b = await sb.rooms.create({ name }, { idempotencyKey: key });
  assert.deepEqual(b, a, "the first answer, not a 409");
  await assert.rejects(sb.rooms.create({ name }), { code: "room_exists", status: 409 });
  await assert.rejects(sb.rooms.create({ name: "other" }, { idempotencyKey: key }), {
    code: "idempotency_key_reused",
  });
  await sb.rooms.delete(name);
});

test("a token signed offline is accepted by the media node", { skip: needsServer }, async () => {
  const sb = client();
  const room = await sb.rooms.create({ name: unique("media") });
  const token = sb.tokens.sign({ room: room.name, identity: "ann", name: "Ann", metadata: "{\"seat\":1}", ttlSeconds: 600 });

  // The API names the node that hosts the room, checking the token as the node does.
  const route = await sb.tokens.route(token);
  assert.match(route.url, /^wss?:\/\/.*\/rtc$/);
  const { socket, message } = await join(route.url, token);
  try {
    assert.equal(message.type, "join");
    assert.equal(message.room.name, room.name);
    assert.equal(message.participant.identity, "ann");
    assert.equal(message.participant.name, "Ann");
    assert.equal(message.participant.metadata, "{\"seat\":1}");
    assert.deepEqual(message.participant.permissions, { can_publish: true, can_subscribe: true, can_publish_data: true });
    const here = await eventually("the participant to be listed", async () => {
      const list = await sb.participants.list(room.name);
      return list.find((p) => p.identity === "ann");
    });
    assert.equal(here.name, "Ann");
    assert.equal((await sb.participants.get(room.name, "ann")).sid, message.participant.sid);
  } finally {
    await leave(socket);
  }

  // Grants travel: a subscriber-only token joins without publishing rights.
  const viewer = sb.tokens.sign({ room: room.name, identity: "viewer", grants: { can_publish: false, can_publish_data: false } });
  const second = await join(route.url, viewer);
  assert.deepEqual(second.message.participant.permissions, { can_publish: false, can_subscribe: true, can_publish_data: false });
  await leave(second.socket);

  // A token signed with the wrong secret, or for a room it does not grant, is refused.
  const forged = signAccessToken({ apiKey: process.env.SWITCHBOARD_API_KEY!, apiSecret: "not-the-secret", room: room.name, identity: "eve" });
  await assert.rejects(sb.tokens.route(forged), { status: 401, code: "invalid_token" });
  await assert.rejects(join(route.url, forged), /401/);
  await sb.rooms.delete(room.name);
});

test("a real webhook delivery verifies with the SDK", { skip: needsServer }, async () => {
  const sb = client();
  const deliveries: { body: Buffer; headers: IncomingHttpHeaders }[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      deliveries.push({ body: Buffer.concat(chunks), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const port = (receiver.address() as AddressInfo).port;
  const endpoint = await sb.webhooks.create({
    url: `http://127.0.0.1:${port}/hooks`,
    events: ["room.started", "webhook.test"],
    description: "sdk test",
  });
  try {
    assert.match(endpoint.secret, /^whsec_/);
    const verifier = new WebhookVerifier(endpoint.secret);
    const room = await sb.rooms.create({ name: unique("hooked") });

    const delivered = await eventually("the room.started delivery", async () =>
      deliveries.find((d) => {
        const event = JSON.parse(d.body.toString()) as Event;
        return event.type === "room.started" && event.data.room.name === room.name;
      }),
    );
    const event = verifier.verify(delivered.body, delivered.headers);
    assert.equal(event.type, "room.started");
    if (event.type === "room.started") assert.equal(event.data.room.sid, room.sid);
    assert.equal(delivered.headers["webhook-id"], event.id);
    assert.deepEqual(await sb.events.get(event.id), event, "the delivery is the log's entry");

    // A changed body, another secret, or no signature do not verify.
    const tampered = Buffer.from(delivered.body.toString().replace(room.name, "other-room"));
    assert.throws(() => verifier.verify(tampered, delivered.headers), WebhookVerificationError);
    assert.throws(
      () => new WebhookVerifier("whsec_" + Buffer.alloc(24, 1).toString("base64")).verify(delivered.body, delivered.headers),
      WebhookVerificationError,
    );
    const { ["webhook-signature"]: _, ...unsigned } = delivered.headers;
    assert.throws(() => verifier.verify(delivered.body, unsigned), WebhookVerificationError);

    // The test event goes to this endpoint; its delivery is logged with its attempt.
    const sent = await sb.webhooks.test(endpoint.id);
    const testDelivery = await eventually("the webhook.test delivery", async () =>
      deliveries.find((d) => d.headers["webhook-id"] === sent.event_id),
    );
    assert.equal(verifier.verify(testDelivery.body.toString(), testDelivery.headers).type, "webhook.test");
    const logged = await eventually("the delivery's attempt to be logged", async () => {
      for await (const d of sb.webhooks.deliveries(endpoint.id)) {
        if (d.event_id === sent.event_id && d.status === "succeeded") return d;
      }
      return undefined;
    });
    assert.equal(logged.attempts[0]?.status_code, 204);

    // After a rotation both secrets verify the deliveries of the next 24 hours.
    const rotated = await sb.webhooks.rotateSecret(endpoint.id);
    const again = await sb.webhooks.test(endpoint.id);
    const next = await eventually("the delivery after the rotation", async () =>
      deliveries.find((d) => d.headers["webhook-id"] === again.event_id),
    );
    assert.equal(new WebhookVerifier(rotated.secret).verify(next.body, next.headers).id, again.event_id);
    assert.equal(verifier.verify(next.body, next.headers).id, again.event_id);
    await sb.rooms.delete(room.name);
  } finally {
    await sb.webhooks.delete(endpoint.id);
    receiver.close();
  }
});

test("events are paged through in log order", { skip: needsServer }, async () => {
  const sb = client();
  const since = new Date(Date.now() - 1000);
  const names = [1, 2, 3, 4, 5].map((i) => unique(`paged${i}`));
  for (const name of names) await sb.rooms.create({ name });

  const seen: Event[] = [];
  let pages = 0;
  for await (const page of sb.events.list({ type: "room.started", since, limit: 2 }).pages()) {
    pages++;
    seen.push(...page.data);
  }
  const ours = seen.filter((e) => e.type === "room.started" && names.includes(e.data.room.name));
  assert.deepEqual(
    ours.map((e) => (e.type === "room.started" ? e.data.room.name : "")),
    names,
  );
  assert.ok(pages >= 3, `${pages} pages of 2`);
  const seqs = seen.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "log order");

  // One room's events, all of them, through the item iterator.
  const one = await sb.events.list({ room: names[0]! }).toArray();
  assert.deepEqual(one.map((e) => e.type), ["room.started"]);
  // A cursor resumes after what was read: the next event shows up there.
  const last = await sb.events.list({ room: names[0]!, limit: 100 });
  assert.equal(last.next_cursor ?? null, null);
  await sb.rooms.delete(names[0]!);
  const after = await sb.events.list({ room: names[0]!, cursor: String(one.at(-1)!.seq) });
  assert.deepEqual(after.data.map((e) => e.type), ["room.finished"]);
  for (const name of names.slice(1)) await sb.rooms.delete(name);
});

test("server-signed tokens, the project and usage answer in their types", { skip: needsServer }, async () => {
  const sb = client();
  const room = await sb.rooms.create({ name: unique("misc") });
  const created = await sb.tokens.create({ room: room.name, identity: "bob", ttl_s: 60 });
  assert.match(created.url, /\/rtc$/);
  const { socket, message } = await join(created.url, created.token);
  assert.equal(message.participant.identity, "bob");
  await leave(socket);
  assert.match((await sb.project.get()).id, /^pr_/);
  const usage = await sb.usage.get({ granularity: "hour" });
  assert.ok(Array.isArray(usage.meters));
  const preview = await sb.billing.preview();
  assert.match(preview.period, /^\d{4}-\d{2}$/);
  await sb.kv.put("sdk-test", "v");
  assert.equal((await sb.kv.get("sdk-test")).value, "v");
  await sb.kv.delete("sdk-test");
  const recording = await sb.recordings.start(room.name, { mode: "tracks" });
  assert.match(recording.id, /^rec_/);
  assert.equal((await sb.recordings.get(recording.id)).room.name, room.name);
  await sb.recordings.stop(recording.id);
  await sb.rooms.delete(room.name);
});
