import { seg, type RequestOptions, type Transport } from "../http.js";
import type { ApiKey, CreatedApiKey, Project as ProjectInfo, UpdateProject } from "../types.js";

/** `/v1/project`: the caller's project. */
export class Project {
  constructor(private readonly http: Transport) {}

  get(options?: RequestOptions): Promise<ProjectInfo> {
    return this.http.json("GET", "/v1/project", { options });
  }

  /** Changes the function failure policy or the regions rooms may be hosted in. */
  update(body: UpdateProject, options?: RequestOptions): Promise<ProjectInfo> {
    return this.http.json("PATCH", "/v1/project", { json: body, options });
  }
}

/** `/v1/api_keys`: the project's API keys. */
export class ApiKeys {
  constructor(private readonly http: Transport) {}

  /** A new key; its secret is shown this once. */
  create(body: { description?: string } = {}, options?: RequestOptions): Promise<CreatedApiKey> {
    return this.http.json("POST", "/v1/api_keys", { json: body, options });
  }

  /** Every key, newest first, revoked ones included. */
  async list(options?: RequestOptions): Promise<ApiKey[]> {
    const page = await this.http.json<{ data: ApiKey[] }>("GET", "/v1/api_keys", { options });
    return page.data;
  }

  /** Revokes a key (`409` for the last one the project has). */
  revoke(id: string, options?: RequestOptions): Promise<void> {
    return this.http.json("DELETE", `/v1/api_keys/${seg(id)}`, { options });
  }
}
