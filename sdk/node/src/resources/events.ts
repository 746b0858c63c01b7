import { seg, type RequestOptions, type Transport } from "../http.js";
import { PageRequest, type Page, type PageParams } from "../pagination.js";
import type { Delivery, Event, ListEvents } from "../types.js";

/** `/v1/events`: the project's event log, oldest first. */
export class Events {
  constructor(private readonly http: Transport) {}

  /**
   * Events in log order. `for await` pages through all of them; a page's
   * `next_cursor` (a log position) resumes after it later, even when it was
   * the last page then.
   */
  list(params: ListEvents & PageParams = {}, options?: RequestOptions): PageRequest<Event> {
    const { limit, type, room, since } = params;
    return new PageRequest(
      (cursor) =>
        this.http.json<Page<Event>>("GET", "/v1/events", { query: { type, room, since, limit, cursor }, options }),
      params.cursor,
    );
  }

  get(id: string, options?: RequestOptions): Promise<Event> {
    return this.http.json("GET", `/v1/events/${seg(id)}`, { options });
  }

  /** Every delivery of the event to the project's endpoints, with their attempts. */
  async deliveries(id: string, options?: RequestOptions): Promise<Delivery[]> {
    const page = await this.http.json<Page<Delivery>>("GET", `/v1/events/${seg(id)}/deliveries`, { options });
    return page.data;
  }
}
