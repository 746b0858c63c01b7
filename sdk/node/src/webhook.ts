import { Webhook, WebhookVerificationError } from "standardwebhooks";

import type { Event } from "./types.js";

export { WebhookVerificationError };

/** Request headers as Node's `http` module, `fetch` or a framework give them. */
export type IncomingHeaders =
  | Headers
  | Record<string, string | string[] | undefined>;

/**
 * Checks deliveries to one webhook endpoint: the Standard Webhooks signature
 * (`webhook-signature` over `webhook-id`, `webhook-timestamp` and the body,
 * by the reference `standardwebhooks` library) and a timestamp within five
 * minutes of now. During the 24 hours after a secret rotation a delivery
 * carries a signature per secret, so the old and new secrets both verify it.
 */
export class WebhookVerifier {
  private readonly webhook: Webhook;

  /** `secret` is the endpoint's `whsec_...` signing secret. */
  constructor(secret: string) {
    this.webhook = new Webhook(secret);
  }

  /**
   * The event a delivery carries, once its signature is checked; throws
   * {@link WebhookVerificationError} otherwise. `body` must be the raw body as
   * received (bytes or their text), before any JSON parsing.
   */
  verify(body: string | Uint8Array, headers: IncomingHeaders): Event {
    return this.webhook.verify(body, plainHeaders(headers)) as Event;
  }
}

/** {@link WebhookVerifier.verify} in one call. */
export function verifyWebhook(body: string | Uint8Array, headers: IncomingHeaders, secret: string): Event {
  return new WebhookVerifier(secret).verify(body, headers);
}

/** The three Standard Webhooks headers as a plain lower-cased record. */
function plainHeaders(headers: IncomingHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  const get =
    typeof (headers as Headers).get === "function"
      ? (name: string) => (headers as Headers).get(name) ?? undefined
      : (name: string) => {
          const record = headers as Record<string, string | string[] | undefined>;
          const key = Object.keys(record).find((k) => k.toLowerCase() === name);
          const value = key === undefined ? undefined : record[key];
          return Array.isArray(value) ? value.join(" ") : value;
        };
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const value = get(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}
