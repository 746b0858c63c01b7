import { seg, type RequestOptions, type Transport } from "../http.js";
import { PageRequest, type Page, type PageParams } from "../pagination.js";
import type {
  DeployOptions,
  Deployment,
  FunctionDetail,
  FunctionInfo,
  FunctionLogEntry,
  FunctionVersion,
  Invocation,
  InvokeFunction,
  InvokeReport,
  KvEntry,
} from "../types.js";

/** `/v1/functions`: WebAssembly components that gate joins and handle events. */
export class Functions {
  constructor(private readonly http: Transport) {}

  /** Functions by name. */
  list(params: PageParams = {}, options?: RequestOptions): PageRequest<FunctionInfo> {
    return new PageRequest(
      (cursor) =>
        this.http.json<Page<FunctionInfo>>("GET", "/v1/functions", { query: { limit: params.limit, cursor }, options }),
      params.cursor,
    );
  }

  /** A function with its versions. */
  get(name: string, options?: RequestOptions): Promise<FunctionDetail> {
    return this.http.json("GET", `/v1/functions/${seg(name)}`, { options });
  }

  delete(name: string, options?: RequestOptions): Promise<void> {
    return this.http.json("DELETE", `/v1/functions/${seg(name)}`, { options });
  }

  /** Uploads a new version: `component` is the WebAssembly component (up to 32 MiB). */
  deploy(name: string, component: Uint8Array, params: DeployOptions, options?: RequestOptions): Promise<Deployment> {
    return this.http.json("POST", `/v1/functions/${seg(name)}/versions`, {
      query: { events: params.events.join(","), activate: params.activate },
      raw: { body: component, contentType: "application/wasm" },
      options,
    });
  }

  /** Every version, newest first. */
  async versions(name: string, options?: RequestOptions): Promise<FunctionVersion[]> {
    const page = await this.http.json<{ data: FunctionVersion[] }>("GET", `/v1/functions/${seg(name)}/versions`, {
      options,
    });
    return page.data;
  }

  /** Chooses the version that runs (an older one rolls back); `null` runs none. */
  activate(name: string, version: number | null, options?: RequestOptions): Promise<FunctionInfo> {
    return this.http.json("POST", `/v1/functions/${seg(name)}/activate`, { json: { version }, options });
  }

  /** Runs, newest first. */
  invocations(name: string, params: PageParams = {}, options?: RequestOptions): PageRequest<Invocation> {
    return new PageRequest(
      (cursor) =>
        this.http.json<Page<Invocation>>("GET", `/v1/functions/${seg(name)}/invocations`, {
          query: { limit: params.limit, cursor },
          options,
        }),
      params.cursor,
    );
  }

  /** Logged lines, newest invocation first. */
  logs(name: string, params: PageParams = {}, options?: RequestOptions): PageRequest<FunctionLogEntry> {
    return new PageRequest(
      (cursor) =>
        this.http.json<Page<FunctionLogEntry>>("GET", `/v1/functions/${seg(name)}/logs`, {
          query: { limit: params.limit, cursor },
          options,
        }),
      params.cursor,
    );
  }

  /** A test run on a sample event; the actions it asks for are not applied. */
  invoke(name: string, body: InvokeFunction, options?: RequestOptions): Promise<InvokeReport> {
    return this.http.json("POST", `/v1/functions/${seg(name)}/invoke`, { json: body, options });
  }
}

/** `/v1/kv`: the key-value store the project's functions share. */
export class Kv {
  constructor(private readonly http: Transport) {}

  get(key: string, options?: RequestOptions): Promise<KvEntry> {
    return this.http.json("GET", `/v1/kv/${seg(key)}`, { options });
  }

  /** Stores up to 64 KiB of text. */
  put(key: string, value: string, options?: RequestOptions): Promise<KvEntry> {
    return this.http.json("PUT", `/v1/kv/${seg(key)}`, { json: { value }, options });
  }

  delete(key: string, options?: RequestOptions): Promise<void> {
    return this.http.json("DELETE", `/v1/kv/${seg(key)}`, { options });
  }
}
