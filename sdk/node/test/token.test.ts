// Access tokens signed offline: the claims and defaults of `switchboard
// token create`, byte for byte when its binary is at hand (SWITCHBOARD_BIN).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { test } from "node:test";

import { decodeAccessToken, signAccessToken } from "@switchboard/server-sdk";

const key = { apiKey: "devkey", apiSecret: "secret" };

test("a token is an HS256 JWT naming its key, with the CLI's default grants", () => {
  const now = new Date("2026-11-23T12:00:00Z");
  const token = signAccessToken({ ...key, room: "standup", identity: "ann", now });
  const [header, body, signature] = token.split(".") as [string, string, string];
  assert.deepEqual(JSON.parse(Buffer.from(header, "base64url").toString()), { typ: "JWT", alg: "HS256", kid: "devkey" });
  assert.equal(signature, createHmac("sha256", "secret").update(`${header}.${body}`).digest("base64url"));
  const iat = now.getTime() / 1000;
  assert.deepEqual(decodeAccessToken(token), {
    iss: "devkey",
    sub: "ann",
    exp: iat + 21_600,
    nbf: iat,
    iat,
    grants: {
      room: "standup",
      can_publish: true,
      can_subscribe: true,
      can_publish_data: true,
      room_admin: false,
      room_create: false,
      recorder: false,
    },
  });
});

test("names, lifetimes and metadata are checked as the server checks them", () => {
  const base = { ...key, room: "r", identity: "i" };
  assert.throws(() => signAccessToken({ ...base, room: "" }), /room must not be empty/);
  assert.throws(() => signAccessToken({ ...base, identity: "a\nb" }), /control characters/);
  assert.throws(() => signAccessToken({ ...base, identity: "é".repeat(65) }), /130 bytes/);
  assert.throws(() => signAccessToken({ ...base, ttlSeconds: 0 }), RangeError);
  assert.throws(() => signAccessToken({ ...base, ttlSeconds: 86_401 }), RangeError);
  assert.throws(() => signAccessToken({ ...base, metadata: "x".repeat(4097) }), /4097 bytes/);
  assert.throws(() => signAccessToken({ ...base, apiSecret: "" }), /apiSecret/);
  assert.ok(signAccessToken({ ...base, identity: "é".repeat(64), ttlSeconds: 86_400 }));
});

test("the same token as `switchboard token create`, byte for byte", { skip: process.env.SWITCHBOARD_BIN ? false : "set SWITCHBOARD_BIN to the switchboard binary" }, () => {
  const cases: [string[], Parameters<typeof signAccessToken>[0]["grants"], string | undefined][] = [
    [[], undefined, undefined],
    [["--name", "Ann Example"], {}, "Ann Example"],
    [["--no-publish", "--no-publish-data", "--room-admin", "--recorder"], { can_publish: false, can_publish_data: false, room_admin: true, recorder: true }, undefined],
    [["--no-subscribe", "--room-create", "--update-metadata"], { can_subscribe: false, room_create: true, can_update_metadata: true }, undefined],
  ];
  for (const [flags, grants, name] of cases) {
    const cli = execFileSync(
      process.env.SWITCHBOARD_BIN!,
      ["token", "create", "--room", "room one", "--identity", "ann", "--ttl-s", "900", "--api-key", "devkey", "--api-secret", "secret", "--dev", ...flags],
      { encoding: "utf8", env: { PATH: process.env.PATH } },
    ).trim();
    const iat = decodeAccessToken(cli).iat;
    const ours = signAccessToken({
      ...key,
      room: "room one",
      identity: "ann",
      ttlSeconds: 900,
      now: new Date(iat * 1000),
      ...(grants ? { grants } : {}),
      ...(name ? { name } : {}),
    });
    assert.equal(ours, cli, `flags ${flags.join(" ")}`);
  }
});
