"""``/v1/project`` and ``/v1/api_keys``: the project itself and its keys."""

from __future__ import annotations

import builtins

from .._model import body, load
from ..models import ApiKey, CreatedApiKey, Project
from ._base import Resource


class Projects(Resource):
    """The project the API key belongs to."""

    def get(self) -> Project:
        """The project: id, name, regions and what a failing function does to joins."""
        return load(Project, self._t.call("GET", "/v1/project"))

    def update(
        self, *, function_failure_policy: str | None = None, regions: builtins.list[str] | None = None
    ) -> Project:
        """Changes the project's settings; arguments left out stay as they are."""
        req = body(function_failure_policy=function_failure_policy, regions=regions)
        return load(Project, self._t.call("PATCH", "/v1/project", json=req))


class ApiKeys(Resource):
    """API keys of the project."""

    def create(self, *, description: str | None = None, idempotency_key: str | None = None) -> CreatedApiKey:
        """A new key; its ``secret`` is shown this once."""
        return load(
            CreatedApiKey,
            self._t.call(
                "POST", "/v1/api_keys", json=body(description=description), idempotency_key=idempotency_key
            ),
        )

    def list(self) -> builtins.list[ApiKey]:
        """Every key of the project, revoked ones included."""
        return [load(ApiKey, k) for k in self._t.call("GET", "/v1/api_keys")["data"]]

    def revoke(self, key_id: str) -> None:
        """Revokes a key: requests made with it are refused from then on."""
        self._t.call("DELETE", "/v1/api_keys/{id}", path={"id": key_id})
