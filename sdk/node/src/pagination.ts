/** One page of a list, as the API answers it. */
export interface Page<T> {
  /** This page's items. */
  data: T[];
  /** Pass as `cursor` to get the next page; absent or null on the last one. */
  next_cursor?: string | null;
}

/** Page size and position of a list call. */
export interface PageParams {
  /** Items per page, 1 to 100 (default 20). */
  limit?: number;
  /** The `next_cursor` of the previous page. */
  cursor?: string;
}

/**
 * A list call. `await` it for one page, or iterate it with `for await` for
 * every item of every page after it, fetched as the loop gets to them:
 *
 * ```ts
 * const first = await sb.rooms.list({ limit: 10 });      // Page<Room>
 * for await (const room of sb.rooms.list()) { ... }       // each Room
 * for await (const page of sb.events.list().pages()) { ... } // each Page<Event>
 * ```
 */
export class PageRequest<T> implements PromiseLike<Page<T>>, AsyncIterable<T> {
  private first: Promise<Page<T>> | undefined;

  constructor(
    private readonly fetchPage: (cursor: string | undefined) => Promise<Page<T>>,
    private readonly cursor: string | undefined,
  ) {}

  then<A = Page<T>, B = never>(
    onfulfilled?: ((page: Page<T>) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.firstPage().then(onfulfilled, onrejected);
  }

  private firstPage(): Promise<Page<T>> {
    this.first ??= this.fetchPage(this.cursor);
    return this.first;
  }

  /** Every page from this one on. */
  async *pages(): AsyncGenerator<Page<T>, void, undefined> {
    let page = await this.firstPage();
    yield page;
    while (page.next_cursor) {
      page = await this.fetchPage(page.next_cursor);
      yield page;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page.data;
  }

  /** Every item from this page on, in one array (mind the size of what you list). */
  async toArray(): Promise<T[]> {
    const all: T[] = [];
    for await (const item of this) all.push(item);
    return all;
  }
}
