"""``/v1/functions`` and ``/v1/kv``: WebAssembly components that gate joins
and handle events, their versions, runs and logs, and the key-value store
they read."""

from __future__ import annotations

import builtins

from typing import Any

from .._model import load
from ..models import (
    Deployment,
    Function,
    FunctionDetail,
    FunctionVersion,
    Invocation,
    InvokeReport,
    KvEntry,
    LogEntry,
)
from ..pagination import Page
from ._base import Resource


class Functions(Resource):
    """Functions: deploy components, pick the version that runs, read what they did."""

    def deploy(
        self,
        name: str,
        component: bytes,
        events: builtins.list[str] | str,
        *,
        activate: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Deployment:
        """Uploads a new version of a function (a WebAssembly component, up to 32 MiB).

        Args:
            name: the function's name; deploying to a new name creates it.
            component: the component's bytes (``open("f.wasm", "rb").read()``).
            events: what runs it: ``participant.joining`` (the synchronous join
                hook) and/or event types (``participant.joined``, ``room.*``, ``*``).
            activate: make it the version that runs (default true).
        """
        if not isinstance(events, str):
            events = ",".join(events)
        answer = self._t.call(
            "POST",
            "/v1/functions/{name}/versions",
            path={"name": name},
            query={"events": events, "activate": activate},
            data=bytes(component),
            content_type="application/wasm",
            idempotency_key=idempotency_key,
        )
        return load(Deployment, answer)

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Function]:
        """Functions by name."""
        return self._page("GET", "/v1/functions", Function, query={"limit": limit, "cursor": cursor})

    def get(self, name: str) -> FunctionDetail:
        """A function with its versions."""
        return load(FunctionDetail, self._t.call("GET", "/v1/functions/{name}", path={"name": name}))

    def delete(self, name: str) -> None:
        """Deletes a function: nothing of it runs again."""
        self._t.call("DELETE", "/v1/functions/{name}", path={"name": name})

    def versions(self, name: str) -> builtins.list[FunctionVersion]:
        """Every version of a function, newest first."""
        answer = self._t.call("GET", "/v1/functions/{name}/versions", path={"name": name})
        return [load(FunctionVersion, v) for v in answer["data"]]

    def activate(self, name: str, version: int | None) -> Function:
        """Chooses the version that runs: newer, older (a rollback) or ``None`` for none."""
        return load(
            Function,
            self._t.call(
                "POST", "/v1/functions/{name}/activate", path={"name": name}, json={"version": version}
            ),
        )

    def invocations(
        self, name: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Invocation]:
        """A function's runs, newest first."""
        return self._page(
            "GET",
            "/v1/functions/{name}/invocations",
            Invocation,
            path={"name": name},
            query={"limit": limit, "cursor": cursor},
        )

    def logs(self, name: str, *, limit: int | None = None, cursor: str | None = None) -> Page[LogEntry]:
        """The lines a function logged, newest run first (``limit`` counts runs)."""
        return self._page(
            "GET",
            "/v1/functions/{name}/logs",
            LogEntry,
            path={"name": name},
            query={"limit": limit, "cursor": cursor},
        )

    def invoke(
        self, name: str, event_type: str, data: dict[str, Any], *, version: int | None = None
    ) -> InvokeReport:
        """Runs a version (default: the active one) on a sample event; actions are reported, not applied."""
        req: dict[str, Any] = {"event": {"type": event_type, "data": data}}
        if version is not None:
            req["version"] = version
        return load(
            InvokeReport, self._t.call("POST", "/v1/functions/{name}/invoke", path={"name": name}, json=req)
        )


class Kv(Resource):
    """The project's key-value store, which functions read with ``kv-get``."""

    def get(self, key: str) -> str:
        """The value stored under ``key``; :class:`~switchboard.NotFoundError` when none is."""
        return load(KvEntry, self._t.call("GET", "/v1/kv/{key}", path={"key": key})).value

    def set(self, key: str, value: str) -> None:
        """Stores ``value`` (up to 64 KiB of text) under ``key`` (1 to 256 bytes)."""
        self._t.call("PUT", "/v1/kv/{key}", path={"key": key}, json={"value": value})

    def delete(self, key: str) -> None:
        """Removes ``key``."""
        self._t.call("DELETE", "/v1/kv/{key}", path={"key": key})
