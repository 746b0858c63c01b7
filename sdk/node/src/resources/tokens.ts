import type { RequestOptions, Transport } from "../http.js";
import { signAccessToken, type AccessTokenOptions } from "../token.js";
import type { CreateToken, RouteResponse, TokenResponse } from "../types.js";

/** Access tokens: signed here offline, or by the server with the room's node. */
export class Tokens {
  constructor(private readonly http: Transport) {}

  /**
   * Signs an access token offline with the client's API key, as
   * `switchboard token create` does: no request is made. Connect with it to
   * the URL `route` (or `create`) gives.
   */
  sign(options: Omit<AccessTokenOptions, "apiKey" | "apiSecret">): string {
    return signAccessToken({ ...options, apiKey: this.http.apiKey, apiSecret: this.http.apiSecret });
  }

  /** A token signed by the server, with the URL of the media node that hosts the room. */
  create(body: CreateToken, options?: RequestOptions): Promise<TokenResponse> {
    return this.http.json("POST", "/v1/tokens", { json: body, options });
  }

  /**
   * The media node a token connects to now (`GET /v1/rtc/route`),
   * authenticated by the token itself; the server checks it as the media
   * node will (`401 invalid_token`, `token_expired`; `403 no_room_grant`).
   */
  route(token: string, params: { region?: string } = {}, options?: RequestOptions): Promise<RouteResponse> {
    return this.http.json("GET", "/v1/rtc/route", {
      query: { region: params.region },
      authorization: `Bearer ${token}`,
      options,
    });
  }
}
