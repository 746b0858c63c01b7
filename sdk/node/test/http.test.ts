// The transport against a scripted local HTTP server: retries on 429 and
// 5xx, Retry-After, idempotency keys kept across retries, and errors that
// carry the API's code.

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";

import { Switchboard, SwitchboardError } from "@switchboard/server-sdk";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
  at: number;
}

/** Answers each request with the next scripted reply; records what came. */
let script: ((res: ServerResponse) => void)[] = [];
let seen: Seen[] = [];
let url = "";
const server = createServer((req, res) => {
  let body = "";
  req.on("data", (c: Buffer) => (body += c.toString()));
  req.on("end", () => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body, at: Date.now() });
    const reply = script.shift() ?? ((r: ServerResponse) => json(r, 500, { error: { code: "unscripted", message: "no reply" } }));
    reply(res);
  });
});

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

const room = { sid: "rm_1", name: "r", created_at: "2026-01-01T00:00:00Z" };

function sdk(maxRetries = 2) {
  return new Switchboard({ url, apiKey: "key", apiSecret: "secret", maxRetries });
}

before(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

function reset(...replies: ((res: ServerResponse) => void)[]) {
  script = replies;
  seen = [];
}

test("a 429 is retried after Retry-After, with the same idempotency key", async () => {
  reset(
    (r) => json(r, 429, { error: { code: "rate_limited", message: "slow down" } }, { "retry-after": "1" }),
    (r) => json(r, 201, room),
  );
  const created = await sdk().rooms.create({ name: "r" });
  assert.equal(created.name, "r");
  assert.equal(seen.length, 2);
  assert.ok(seen[1]!.at - seen[0]!.at >= 950, `waited ${seen[1]!.at - seen[0]!.at} ms`);
  const key = seen[0]!.headers["idempotency-key"];
  assert.match(String(key), /^[0-9a-f-]{36}$/);
  assert.equal(seen[1]!.headers["idempotency-key"], key, "a retry repeats the key");
  assert.equal(seen[0]!.headers.authorization, "Basic " + Buffer.from("key:secret").toString("base64"));
  assert.equal(seen[0]!.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(seen[0]!.body), { name: "r" });
});

test("5xx answers are retried with backoff, then the error is thrown", async () => {
  const fail = (r: ServerResponse) =>
    json(r, 503, { error: { code: "no_media_node", message: "none" } }, { "x-request-id": "req-1" });
  reset(fail, fail, fail);
  const error = await sdk(2).rooms.get("r").then(
    () => assert.fail("should throw"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof SwitchboardError);
  assert.equal(error.status, 503);
  assert.equal(error.code, "no_media_node");
  assert.equal(error.message, "none");
  assert.equal(error.requestId, "req-1");
  assert.equal(seen.length, 3, "one attempt and two retries");
  reset(fail, (r) => json(r, 200, room));
  assert.equal((await sdk().rooms.get("r")).sid, "rm_1");
});

test("client errors are not retried and carry the API's code", async () => {
  reset((r) => json(r, 404, { error: { code: "room_not_found", message: "there is no room named `x`" } }));
  await assert.rejects(sdk().rooms.get("x"), (e: SwitchboardError) => e.code === "room_not_found" && e.status === 404);
  assert.equal(seen.length, 1);
  reset((r) => {
    r.writeHead(400, { "content-type": "text/plain" });
    r.end("not json");
  });
  await assert.rejects(sdk().rooms.get("x"), (e: SwitchboardError) => e.code === "http_400" && e.message === "not json");
});

test("a concurrent copy of the same idempotent request is waited for", async () => {
  reset(
    (r) => json(r, 409, { error: { code: "idempotency_key_in_use", message: "retry" } }),
    (r) => json(r, 201, room),
  );
  await sdk().rooms.create({ name: "r" }, { idempotencyKey: "mine" });
  assert.deepEqual(
    seen.map((s) => s.headers["idempotency-key"]),
    ["mine", "mine"],
  );
  reset((r) => json(r, 409, { error: { code: "room_exists", message: "taken" } }));
  await assert.rejects(sdk().rooms.create({ name: "r" }), { code: "room_exists" });
  assert.equal(seen.length, 1, "a real conflict is not retried");
});

test("only POSTs carry an idempotency key; paths and queries are escaped", async () => {
  reset((r) => json(r, 200, { data: [], next_cursor: null }));
  await sdk().events.list({ room: "a b/c", type: "room.started", since: new Date(0), limit: 5 });
  assert.equal(seen[0]!.headers["idempotency-key"], undefined);
  assert.equal(seen[0]!.url, "/v1/events?type=room.started&room=a+b%2Fc&since=1970-01-01T00%3A00%3A00.000Z&limit=5");
  reset((r) => {
    r.writeHead(204);
    r.end();
  });
  assert.equal(await sdk().rooms.delete("a b/c"), undefined);
  assert.equal(seen[0]!.url, "/v1/rooms/a%20b%2Fc");
});

test("pages are fetched as the loop reaches them", async () => {
  reset(
    (r) => json(r, 200, { data: [room, { ...room, sid: "rm_2" }], next_cursor: "rm_2" }),
    (r) => json(r, 200, { data: [{ ...room, sid: "rm_3" }] }),
  );
  const sids: string[] = [];
  for await (const r of sdk().rooms.list({ limit: 2 })) sids.push(r.sid);
  assert.deepEqual(sids, ["rm_1", "rm_2", "rm_3"]);
  assert.deepEqual(
    seen.map((s) => s.url),
    ["/v1/rooms?limit=2", "/v1/rooms?limit=2&cursor=rm_2"],
  );
});

test("an unreachable server is a connection_error after the retries", async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const sb = new Switchboard({ url: `http://127.0.0.1:${port}`, apiKey: "k", apiSecret: "s", maxRetries: 1 });
  await assert.rejects(sb.rooms.get("r"), (e: SwitchboardError) => e.code === "connection_error" && e.status === undefined);
});

test("a call that outlasts its timeout is a timeout error", async () => {
  reset(() => {
    // Never answers.
  });
  await assert.rejects(
    sdk(0).rooms.get("r", { timeoutMs: 200 }),
    (e: SwitchboardError) => e.code === "timeout",
  );
});
