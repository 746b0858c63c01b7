// Shared by the tests: the server under test and small waiting helpers.

import { Switchboard } from "@switchboard/server-sdk";

/** The server the tests run against, from SWITCHBOARD_URL (they skip without it). */
export const serverUrl = process.env.SWITCHBOARD_URL;

/** Why a test that needs a server is skipped, or `false` when one is given. */
export const needsServer: string | false = serverUrl ? false : "set SWITCHBOARD_URL (and the API key) to run it";

/** A client of the server under test, from the environment. */
export function client(): Switchboard {
  return new Switchboard();
}

/** A name no other test or run uses. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Polls `check` until it returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
