import { randomUUID } from "node:crypto";

import { errorFromResponse, SwitchboardError } from "./errors.js";

/** How to reach the API; every field falls back to the environment. */
export interface ClientOptions {
  /** The server's base URL, such as `http://127.0.0.1:7880` (default: `SWITCHBOARD_URL`). */
  url?: string;
  /** The API key id (default: `SWITCHBOARD_API_KEY`). */
  apiKey?: string;
  /** The API key's secret (default: `SWITCHBOARD_API_SECRET`). */
  apiSecret?: string;
  /** Attempts after the first on 429, 5xx and network errors (default 2). */
  maxRetries?: number;
  /** Milliseconds one attempt may take (default 30000). */
  timeoutMs?: number;
  /** The `fetch` to call (default: the global one). */
  fetch?: typeof fetch;
}

/** Per-call settings, the last argument of every method. */
export interface RequestOptions {
  /**
   * The `Idempotency-Key` of a `POST`: the server answers a repeat of it with
   * the first answer. Every `POST` gets a random one when none is given, kept
   * across the SDK's own retries.
   */
  idempotencyKey?: string;
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number;
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number;
}

/** Query parameters; `undefined` ones are left out. */
export type Query = Record<string, string | number | boolean | Date | undefined>;

interface Call {
  query?: Query | undefined;
  /** A JSON body. */
  json?: unknown;
  /** A raw body with its content type. */
  raw?: { body: Uint8Array; contentType: string };
  /** Replaces the API key's `Authorization` (for calls authenticated by an access token). */
  authorization?: string;
  options?: RequestOptions | undefined;
}

const VERSION = "0.1.0";
/** The longest wait between attempts, whatever `Retry-After` says. */
const MAX_DELAY_MS = 60_000;

/** Sends requests to the API: authentication, JSON, retries and errors. */
export class Transport {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  private readonly authorization: string;
  private readonly maxRetries: number;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const env = process.env;
    const url = options.url ?? env.SWITCHBOARD_URL;
    const apiKey = options.apiKey ?? env.SWITCHBOARD_API_KEY;
    const apiSecret = options.apiSecret ?? env.SWITCHBOARD_API_SECRET;
    if (!url) throw new TypeError("give `url` or set SWITCHBOARD_URL (such as http://127.0.0.1:7880)");
    if (!apiKey || !apiSecret) {
      throw new TypeError("give `apiKey` and `apiSecret`, or set SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET");
    }
    this.baseUrl = url.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.apiSecret = apiSecret;
    this.authorization = "Basic " + Buffer.from(`${apiKey}:${apiSecret}`).toString("base64");
    this.maxRetries = options.maxRetries ?? 2;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** Calls the API and returns its JSON answer (`undefined` for 204). */
  async json<T>(method: string, path: string, call: Call = {}): Promise<T> {
    const { text } = await this.call(method, path, call, true);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Calls the API and returns the successful `Response` with its body unread
   * (for file downloads): the timeout covers the wait for its headers only.
   */
  async send(method: string, path: string, call: Call = {}): Promise<Response> {
    return (await this.call(method, path, call, false)).response;
  }

  private async call(
    method: string,
    path: string,
    call: Call,
    readBody: boolean,
  ): Promise<{ response: Response; text: string }> {
    const options = call.options ?? {};
    const headers: Record<string, string> = {
      authorization: call.authorization ?? this.authorization,
      accept: "application/json",
      "user-agent": `switchboard-node/${VERSION} node/${process.version}`,
    };
    let body: string | Uint8Array | undefined;
    if (call.raw) {
      body = call.raw.body;
      headers["content-type"] = call.raw.contentType;
    } else if (call.json !== undefined) {
      body = JSON.stringify(call.json);
      headers["content-type"] = "application/json";
    }
    if (method === "POST") headers["idempotency-key"] = options.idempotencyKey ?? randomUUID();
    const url = this.baseUrl + path + queryString(call.query);
    const maxRetries = options.maxRetries ?? this.maxRetries;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;

    for (let attempt = 0; ; attempt++) {
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), timeoutMs);
      const signal = options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal;
      let response: Response;
      let text = "";
      try {
        response = await this.fetch(url, { method, headers, body: body ?? null, signal });
        if (readBody || !response.ok) text = await response.text();
      } catch (cause) {
        if (options.signal?.aborted) throw cause;
        const timedOut = timeout.signal.aborted;
        const error = new SwitchboardError(
          timedOut
            ? `${method} ${path} got no answer within ${timeoutMs} ms`
            : `${method} ${path} could not reach ${this.baseUrl}: ${(cause as Error).message}`,
          { code: timedOut ? "timeout" : "connection_error", cause },
        );
        if (attempt >= maxRetries) throw error;
        await sleep(backoff(attempt), options.signal);
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (response.ok) return { response, text };
      const error = errorFromResponse(response, text);
      if (attempt >= maxRetries || !retryable(response.status, error.code)) throw error;
      const wait = error.retryAfter === undefined ? backoff(attempt) : error.retryAfter * 1000;
      await sleep(Math.min(wait, MAX_DELAY_MS), options.signal);
    }
  }
}

/**
 * Whether another attempt may succeed: the server was overloaded, failed, or
 * is still running the first copy of this idempotent request.
 */
function retryable(status: number, code: string): boolean {
  return status === 429 || status >= 500 || (status === 409 && code === "idempotency_key_in_use");
}

/** Exponential backoff from 0.5 s to 8 s, with jitter so clients spread out. */
function backoff(attempt: number): number {
  return Math.min(500 * 2 ** attempt, 8_000) * (0.75 + Math.random() * 0.25);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", abort, { once: true });
  });
}

function queryString(query: Query | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    params.append(key, value instanceof Date ? value.toISOString() : String(value));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

/** A path segment, escaped. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}
