"""Cursor pagination, as every ``/v1`` list does it.

A list call returns one :class:`Page`: its ``data`` and, when more follow, a
``next_cursor``. Walk every item, fetching pages as needed::

    for event in client.events.list(type="participant.joined").auto_paging_iter():
        print(event.seq, event.data["participant"]["identity"])

or go page by page with :meth:`Page.next_page`, keeping ``next_cursor`` to
resume later (the events cursor is the last ``seq`` seen, so a consumer that
stores it reads each event once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list.

    Iterating a page yields its own items only; :meth:`auto_paging_iter`
    yields this page's items and every later page's.
    """

    data: list[T]
    """The items of this page, in the list's order."""
    next_cursor: str | None
    """Pass as ``cursor`` to get the next page; ``None`` on the last page."""
    _fetch: Callable[[str], "Page[T]"] | None = field(default=None, repr=False, compare=False)

    @property
    def has_more(self) -> bool:
        """Whether another page follows."""
        return self.next_cursor is not None

    def next_page(self) -> "Page[T] | None":
        """Fetches the page after this one, or returns ``None`` on the last page."""
        if self.next_cursor is None or self._fetch is None:
            return None
        return self._fetch(self.next_cursor)

    def auto_paging_iter(self) -> Iterator[T]:
        """Yields every item from this page on, fetching later pages lazily."""
        page: Page[T] | None = self
        while page is not None:
            yield from page.data
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> T:
        return self.data[i]


def page_from(
    answer: dict[str, Any],
    convert: Callable[[Any], T],
    fetch: Callable[[str], "Page[T]"] | None,
) -> Page[T]:
    """Builds a :class:`Page` from a ``{"data": [...], "next_cursor": ...}`` answer."""
    return Page(
        data=[convert(x) for x in answer.get("data") or []],
        next_cursor=answer.get("next_cursor"),
        _fetch=fetch,
    )
