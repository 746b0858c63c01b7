import { seg, type RequestOptions, type Transport } from "../http.js";
import { PageRequest, type Page, type PageParams } from "../pagination.js";
import type { CreatedWebhook, CreateWebhook, Delivery, RotatedSecret, UpdateWebhook, WebhookEndpoint } from "../types.js";

/** `/v1/webhooks`: endpoints that receive the project's events, and their deliveries. */
export class Webhooks {
  constructor(private readonly http: Transport) {}

  /** Registers an endpoint; the answer carries its `whsec_...` secret this once. */
  create(body: CreateWebhook, options?: RequestOptions): Promise<CreatedWebhook> {
    return this.http.json("POST", "/v1/webhooks", { json: body, options });
  }

  list(params: PageParams = {}, options?: RequestOptions): PageRequest<WebhookEndpoint> {
    return new PageRequest(
      (cursor) =>
        this.http.json<Page<WebhookEndpoint>>("GET", "/v1/webhooks", { query: { limit: params.limit, cursor }, options }),
      params.cursor,
    );
  }

  get(id: string, options?: RequestOptions): Promise<WebhookEndpoint> {
    return this.http.json("GET", `/v1/webhooks/${seg(id)}`, { options });
  }

  update(id: string, body: UpdateWebhook, options?: RequestOptions): Promise<WebhookEndpoint> {
    return this.http.json("PATCH", `/v1/webhooks/${seg(id)}`, { json: body, options });
  }

  /** Stops deliveries; the delivery log stays readable per event. */
  delete(id: string, options?: RequestOptions): Promise<void> {
    return this.http.json("DELETE", `/v1/webhooks/${seg(id)}`, { options });
  }

  /** A new secret; the old one keeps signing alongside it for 24 hours. */
  rotateSecret(id: string, options?: RequestOptions): Promise<RotatedSecret> {
    return this.http.json("POST", `/v1/webhooks/${seg(id)}/rotate-secret`, { options });
  }

  /** Records a `webhook.test` event that goes to this endpoint only. */
  test(id: string, options?: RequestOptions): Promise<{ event_id: string }> {
    return this.http.json("POST", `/v1/webhooks/${seg(id)}/test`, { options });
  }

  /** Deliveries to the endpoint, newest first, each with every attempt. */
  deliveries(id: string, params: PageParams = {}, options?: RequestOptions): PageRequest<Delivery> {
    return new PageRequest(
      (cursor) =>
        this.http.json<Page<Delivery>>("GET", `/v1/webhooks/${seg(id)}/deliveries`, {
          query: { limit: params.limit, cursor },
          options,
        }),
      params.cursor,
    );
  }

  /** One more attempt of a delivery now, whatever its status. */
  retryDelivery(deliveryId: string, options?: RequestOptions): Promise<Delivery> {
    return this.http.json("POST", `/v1/webhooks/deliveries/${seg(deliveryId)}/retry`, { options });
  }

  /** Resends every subscribed event at or after `since` (at most 10,000). */
  replay(id: string, body: { since: Date | string }, options?: RequestOptions): Promise<{ queued: number }> {
    const since = body.since instanceof Date ? body.since.toISOString() : body.since;
    return this.http.json("POST", `/v1/webhooks/${seg(id)}/replay`, { json: { since }, options });
  }
}
