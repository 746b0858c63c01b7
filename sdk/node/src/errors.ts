/** What went wrong with a call, as the API said it or as the transport saw it. */
export class SwitchboardError extends Error {
  /** The HTTP status, or `undefined` when no answer came (`code` is then `connection_error` or `timeout`). */
  readonly status: number | undefined;
  /** The API's stable, machine-readable code, such as `room_not_found` or `rate_limited`. */
  readonly code: string;
  /** The server's `x-request-id` for this call, to find it in the server's logs. */
  readonly requestId: string | undefined;
  /** Seconds the server asked to wait (`Retry-After`), when it asked. */
  readonly retryAfter: number | undefined;

  constructor(
    message: string,
    init: { status?: number; code: string; requestId?: string; retryAfter?: number; cause?: unknown },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "SwitchboardError";
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }
}

/** The body of every error answer: `{"error": {"code", "message"}}`. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** The error an answer carries, read from its body when it is the API's JSON shape. */
export function errorFromResponse(res: Response, text: string): SwitchboardError {
  let code = `http_${res.status}`;
  let message = text.slice(0, 500) || res.statusText || `HTTP ${res.status}`;
  try {
    const body = JSON.parse(text) as Partial<ErrorBody>;
    if (body.error && typeof body.error.code === "string") {
      code = body.error.code;
      message = body.error.message ?? code;
    }
  } catch {
    // Not JSON (a proxy's page, say): the text itself is the message.
  }
  const retryAfter = parseRetryAfter(res.headers.get("retry-after"));
  return new SwitchboardError(message, {
    status: res.status,
    code,
    ...(res.headers.get("x-request-id") ? { requestId: res.headers.get("x-request-id")! } : {}),
    ...(retryAfter === undefined ? {} : { retryAfter }),
  });
}

/** `Retry-After` in seconds: a number of seconds or an HTTP date. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}
