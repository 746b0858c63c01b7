import { seg, type RequestOptions, type Transport } from "../http.js";
import { PageRequest, type Page, type PageParams } from "../pagination.js";
import type { BillingPreview, ListSessions, Session, SessionQuality, StripeAccount, UsageQuery, UsageReport } from "../types.js";

/** `/v1/usage`: metered usage and the sessions behind it. */
export class Usage {
  constructor(private readonly http: Transport) {}

  /** Usage per meter over a window, by bucket and by room. */
  get(query: UsageQuery = {}, options?: RequestOptions): Promise<UsageReport> {
    return this.http.json("GET", "/v1/usage", { query: { ...query }, options });
  }

  /** Participant sessions, newest first, and what each was billed. */
  sessions(params: ListSessions & PageParams = {}, options?: RequestOptions): PageRequest<Session> {
    const { room, from, to, limit } = params;
    return new PageRequest(
      (cursor) =>
        this.http.json<Page<Session>>("GET", "/v1/usage/sessions", { query: { room, from, to, limit, cursor }, options }),
      params.cursor,
    );
  }

  /** One session's connection every few seconds (`sid` is `pa_...`). */
  sessionQuality(sid: string, options?: RequestOptions): Promise<SessionQuality> {
    return this.http.json("GET", `/v1/usage/sessions/${seg(sid)}/quality`, { options });
  }
}

/** `/v1/billing`: what usage costs. */
export class Billing {
  constructor(private readonly http: Transport) {}

  /** The invoice of a period (`YYYY-MM`; default the current one) as it stands. */
  preview(params: { period?: string } = {}, options?: RequestOptions): Promise<BillingPreview> {
    return this.http.json("GET", "/v1/billing/preview", { query: { period: params.period }, options });
  }

  /** The project's Stripe customer, subscription, suspension and usage reports. */
  stripe(params: { limit?: number } = {}, options?: RequestOptions): Promise<StripeAccount> {
    return this.http.json("GET", "/v1/billing/stripe", { query: { limit: params.limit }, options });
  }
}
