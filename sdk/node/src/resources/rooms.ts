import { seg, type RequestOptions, type Transport } from "../http.js";
import { PageRequest, type Page, type PageParams } from "../pagination.js";
import type { CreateRoom, Room, UpdateRoom } from "../types.js";

/** `/v1/rooms`: create, list, read, change and delete rooms. */
export class Rooms {
  constructor(private readonly http: Transport) {}

  /** Creates a room (`409 room_exists` if the name is taken). */
  create(body: CreateRoom = {}, options?: RequestOptions): Promise<Room> {
    return this.http.json("POST", "/v1/rooms", { json: body, options });
  }

  /** The project's rooms, oldest first: `await` a page or `for await` every room. */
  list(params: PageParams = {}, options?: RequestOptions): PageRequest<Room> {
    return new PageRequest(
      (cursor) => this.http.json<Page<Room>>("GET", "/v1/rooms", { query: { limit: params.limit, cursor }, options }),
      params.cursor,
    );
  }

  get(name: string, options?: RequestOptions): Promise<Room> {
    return this.http.json("GET", `/v1/rooms/${seg(name)}`, { options });
  }

  /** Changes a room's metadata or limits. */
  update(name: string, body: UpdateRoom, options?: RequestOptions): Promise<Room> {
    return this.http.json("PATCH", `/v1/rooms/${seg(name)}`, { json: body, options });
  }

  /** Closes a room, disconnecting everyone in it. */
  delete(name: string, options?: RequestOptions): Promise<void> {
    return this.http.json("DELETE", `/v1/rooms/${seg(name)}`, { options });
  }
}
