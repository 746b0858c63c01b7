// Retries against a real server's rate limit: SWITCHBOARD_LIMITED_URL is a
// server whose API keys may make few requests a second (its `[limits]`).

import assert from "node:assert/strict";
import { test } from "node:test";

import { Switchboard, SwitchboardError } from "@switchboard/server-sdk";

const url = process.env.SWITCHBOARD_LIMITED_URL;
const skip = url ? false : "set SWITCHBOARD_LIMITED_URL to a server with a low [limits] requests_per_key";

test("a burst past the rate limit is slowed by 429s and still succeeds", { skip }, async () => {
  const statuses: number[] = [];
  const counting: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    statuses.push(res.status);
    return res;
  };
  const sb = new Switchboard({ url: url!, fetch: counting, maxRetries: 4 });
  const started = Date.now();
  const pages = await Promise.all(Array.from({ length: 15 }, () => sb.rooms.list({ limit: 1 })));
  assert.equal(pages.length, 15);
  const refused = statuses.filter((s) => s === 429).length;
  assert.ok(refused > 0, "the burst was refused at first");
  assert.equal(statuses.filter((s) => s === 200).length, 15);
  assert.ok(Date.now() - started >= 900, "the retries waited for Retry-After");

  // Without retries the refusal comes back with the API's code and the wait.
  const impatient = new Switchboard({ url: url!, maxRetries: 0 });
  const errors = await Promise.allSettled(Array.from({ length: 15 }, () => impatient.rooms.list()));
  const rejected = errors.find((r): r is PromiseRejectedResult => r.status === "rejected");
  assert.ok(rejected, "a burst without retries is refused");
  const error = rejected.reason as SwitchboardError;
  assert.equal(error.status, 429);
  assert.equal(error.code, "rate_limited");
  assert.ok(error.retryAfter !== undefined && error.retryAfter >= 1);
});
