import { seg, type RequestOptions, type Transport } from "../http.js";
import type { Participant, UpdateParticipant } from "../types.js";

/** `/v1/rooms/{name}/participants`: the live participants of a room. */
export class Participants {
  constructor(private readonly http: Transport) {}

  /** Everyone connected to the room now. */
  async list(room: string, options?: RequestOptions): Promise<Participant[]> {
    const page = await this.http.json<{ data: Participant[] }>("GET", `${base(room)}`, { options });
    return page.data;
  }

  get(room: string, identity: string, options?: RequestOptions): Promise<Participant> {
    return this.http.json("GET", `${base(room)}/${seg(identity)}`, { options });
  }

  /** Changes a participant's name, metadata or permissions. */
  update(room: string, identity: string, body: UpdateParticipant, options?: RequestOptions): Promise<Participant> {
    return this.http.json("PATCH", `${base(room)}/${seg(identity)}`, { json: body, options });
  }

  /** Disconnects a participant (its `participant.left` says `removed`). */
  remove(room: string, identity: string, options?: RequestOptions): Promise<void> {
    return this.http.json("DELETE", `${base(room)}/${seg(identity)}`, { options });
  }

  /** Mutes or unmutes one of a participant's tracks. */
  mute(
    room: string,
    identity: string,
    body: { track_sid: string; muted: boolean },
    options?: RequestOptions,
  ): Promise<Participant> {
    return this.http.json("POST", `${base(room)}/${seg(identity)}/mute`, { json: body, options });
  }
}

function base(room: string): string {
  return `/v1/rooms/${seg(room)}/participants`;
}
