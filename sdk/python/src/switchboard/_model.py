"""Typed views of the API's JSON: dataclasses decoded by their annotations.

Every model is a frozen, keyword-only dataclass. :func:`decode` builds one
from a JSON object: fields the server adds in later versions are kept in
``raw`` (the object as received) rather than breaking old clients, and
RFC 3339 strings become timezone-aware :class:`~datetime.datetime`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar, Union

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Model:
    """Base of every model: ``raw`` holds the JSON object as the server sent it."""

    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Builds the model from a JSON object (as the API or a webhook sends it)."""
        return typing.cast(T, decode(cls, data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this model came from."""
        return dict(self.raw)


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(s: str) -> datetime:
    """Parses an RFC 3339 time such as ``2026-11-23T12:13:20.123456Z``."""
    s = _FRACTION.sub(r"\1", s.strip())
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    return datetime.fromisoformat(s)


def decode(tp: Any, value: Any) -> Any:
    """Converts JSON ``value`` to type ``tp`` (a model, list, dict, optional, datetime or scalar)."""
    if value is None:
        return None
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return decode(args[0], value) if len(args) == 1 else value
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return [decode(item, v) for v in value]
    if origin is dict:
        _, item = typing.get_args(tp) or (str, Any)
        return {k: decode(item, v) for k, v in value.items()}
    if origin is typing.Literal:
        return value
    if tp is datetime:
        return parse_time(value) if isinstance(value, str) else value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            return value
        hints = _hints(tp)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(tp):
            if f.name == "raw":
                continue
            key = f.metadata.get("json", f.name)
            if key in value:
                kwargs[f.name] = decode(hints[f.name], value[key])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                kwargs[f.name] = None
        return tp(raw=value, **kwargs)  # type: ignore[call-arg]
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def body(**fields: Any) -> dict[str, Any]:
    """A request body from keyword arguments, leaving out those that are ``None``."""
    return {k: v for k, v in fields.items() if v is not None}


def rfc3339(value: datetime | str) -> str:
    """An aware datetime (or an RFC 3339 string, passed through) as RFC 3339."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"{value!r} has no time zone; pass an aware datetime such as datetime.now(timezone.utc)"
        )
    return value.isoformat().replace("+00:00", "Z")


M = TypeVar("M")


def load(cls: type[M], value: Any) -> M:
    """:func:`decode` typed for a model class."""
    return typing.cast(M, decode(cls, value))
