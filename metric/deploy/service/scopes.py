"""FastAPI dependencies of the routes: the server's shared state, and the API-key scope a route needs."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from fastapi import Request

from metric.deploy.service.errors import ApiError
from metric.deploy.service.keys import SCOPES, KeyRecord, allows
from metric.deploy.service.state import Service
from metric.errors import ConfigError

NO_KEY = (
    "a valid API key is needed: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' (python -m metric.serve "
    "keys create ...)."
)


def request_key(headers: dict[bytes, bytes]) -> str | None:
    """The API key a request carries: `Authorization: Bearer <key>`, else `X-API-Key`."""
    header = headers.get(b"authorization", b"").decode("latin-1")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    key = headers.get(b"x-api-key")
    return key.decode("latin-1") if key is not None else None


def current_service(request: Request) -> Service:
    """The state of the server answering this request (create_app puts it on app.state)."""
    return request.app.state.service


@cache
def require_scope(needed: str) -> Callable[[Request], KeyRecord]:
    """A dependency for routes that need a key of scope `needed` or above (verify < enroll < admin): it answers 401
    without an active key and 403 for a lesser scope, and hands the route the key's record (for the audit log).
    Use it as `key: KeyRecord = Depends(require_scope("enroll"))`."""
    if needed not in SCOPES:
        raise ConfigError(f"scope {needed!r} is not one of {', '.join(SCOPES)}.")

    def check(request: Request) -> KeyRecord:
        record = current_service(request).keys.check(request_key(dict(request.scope["headers"])))  # raw, lower-case
        if record is None:
            raise ApiError(401, "unauthorized", NO_KEY)
        if not allows(record.scope, needed):
            raise ApiError(403, "forbidden", f"this key's scope ({record.scope}) does not allow {needed} calls.")
        return record

    check.__name__ = f"require_{needed}_key"
    return check
