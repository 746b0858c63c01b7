import { seg, type RequestOptions, type Transport } from "../http.js";
import { PageRequest, type Page, type PageParams } from "../pagination.js";
import type { Recording, RecordingSpec, SignedUrl } from "../types.js";

/** `/v1/recordings`: start and stop recordings, list them, fetch their files. */
export class Recordings {
  constructor(private readonly http: Transport) {}

  /** Starts recording a room (a room not live yet starts when it goes live). */
  start(room: string, spec: RecordingSpec, options?: RequestOptions): Promise<Recording> {
    return this.http.json("POST", `/v1/rooms/${seg(room)}/recordings`, { json: spec, options });
  }

  /** Recordings, oldest first, optionally of one room. */
  list(params: { room?: string } & PageParams = {}, options?: RequestOptions): PageRequest<Recording> {
    return new PageRequest(
      (cursor) =>
        this.http.json<Page<Recording>>("GET", "/v1/recordings", {
          query: { room: params.room, limit: params.limit, cursor },
          options,
        }),
      params.cursor,
    );
  }

  get(id: string, options?: RequestOptions): Promise<Recording> {
    return this.http.json("GET", `/v1/recordings/${seg(id)}`, { options });
  }

  stop(id: string, options?: RequestOptions): Promise<Recording> {
    return this.http.json("POST", `/v1/recordings/${seg(id)}/stop`, { options });
  }

  /** Deletes a finished recording and its files (`409` while it records). */
  delete(id: string, options?: RequestOptions): Promise<void> {
    return this.http.json("DELETE", `/v1/recordings/${seg(id)}`, { options });
  }

  /** One of its files, as a `Response` whose body streams the bytes. */
  download(id: string, file: string, options?: RequestOptions): Promise<Response> {
    return this.http.send("GET", `/v1/recordings/${seg(id)}/files/${seg(file)}`, { options });
  }

  /** A time-limited URL of one file that needs no credentials (1 s to a week; default an hour). */
  signUrl(id: string, file: string, params: { expires_in_s?: number } = {}, options?: RequestOptions): Promise<SignedUrl> {
    return this.http.json("POST", `/v1/recordings/${seg(id)}/files/${seg(file)}/url`, { json: params, options });
  }
}
