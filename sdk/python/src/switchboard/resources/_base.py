"""What every resource shares: the transport and the list helper."""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

from .._http import Transport
from .._model import load
from ..pagination import Page, page_from

T = TypeVar("T")


class Resource:
    """A group of API operations on one kind of resource."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def _page(
        self,
        method: str,
        template: str,
        model: type[T],
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Page[T]:
        """One page of a cursor-paginated list, able to fetch the next ones."""
        query = dict(query or {})

        def fetch(cursor: str) -> Page[T]:
            return self._page(method, template, model, path=path, query={**query, "cursor": cursor})

        answer = self._t.call(method, template, path=path, query=query)
        return page_from(answer, lambda x: load(model, x), fetch)
