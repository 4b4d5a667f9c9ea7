"""The service's one JSON error shape, {"error": {"code", "message"}}, and the handlers that map exceptions onto it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from datamodules.faces.frontend import NoFace
from datamodules.images import BadImage
from metric.deploy.gallery.store import IdentityExists
from metric.deploy.liveness import SpoofDetected
from metric.deploy.probe import SeveralFaces
from metric.deploy.service.uploads import UploadError
from metric.deploy.service.workers import Busy
from metric.errors import ConfigError

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    422: "presentation_attack",
    503: "busy",
}


class ApiError(Exception):
    """An answer other than 2xx that a handler or dependency decides on: HTTP status, stable code, message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    """The one error shape every failure is answered with."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def api_error(request: Request, error: ApiError) -> JSONResponse:
    return error_response(error.status, error.code, error.message, error.headers)


async def upload_error(request: Request, error: UploadError) -> JSONResponse:
    return error_response(error.status, error.code, error.message)


async def busy(request: Request, error: Busy) -> JSONResponse:
    return error_response(503, "busy", str(error), {"Retry-After": "1"})


async def spoof(request: Request, error: SpoofDetected) -> JSONResponse:
    return error_response(422, "presentation_attack", str(error))


async def bad_image(request: Request, error: BadImage) -> JSONResponse:
    code = (
        "no_face" if isinstance(error, NoFace) else "several_faces" if isinstance(error, SeveralFaces) else "bad_image"
    )
    return error_response(400, code, str(error))


async def exists(request: Request, error: IdentityExists) -> JSONResponse:
    return error_response(403, "forbidden", f"{error} An enroll key creates new identities only: use an admin key.")


async def config_error(request: Request, error: ConfigError) -> JSONResponse:
    return error_response(400, "bad_request", str(error))


async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors())
    return error_response(400, "bad_request", f"the request is incomplete or malformed ({fields}).")


async def http_error(request: Request, error: HTTPException) -> JSONResponse:
    return error_response(error.status_code, STATUS_CODES.get(error.status_code, "error"), str(error.detail))


async def internal(request: Request, error: Exception) -> JSONResponse:
    return error_response(500, "internal", "the server failed on this request; it has been logged.")


HANDLERS: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
    ApiError: api_error,
    UploadError: upload_error,
    Busy: busy,
    SpoofDetected: spoof,
    BadImage: bad_image,
    IdentityExists: exists,
    ConfigError: config_error,
    RequestValidationError: invalid,
    HTTPException: http_error,
    Exception: internal,
}


def add_error_handlers(app: FastAPI) -> None:
    """Answer every exception the routes raise in the one error shape (an unexpected one: 500, nothing leaked)."""
    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)
