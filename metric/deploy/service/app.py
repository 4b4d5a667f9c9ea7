"""The FastAPI application of one server: its shared state, middleware, error handlers and routers put together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from metric.deploy.service import routes_decisions, routes_health, routes_identities, routes_page
from metric.deploy.service.body_limit import BodyLimit
from metric.deploy.service.errors import add_error_handlers
from metric.deploy.service.state import Service

BUILT_IN_ROUTERS: tuple[APIRouter, ...] = (
    routes_page.router,
    routes_health.router,
    routes_decisions.router,
    routes_identities.router,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Nothing to start; on shutdown the worker pool finishes its jobs."""
    yield
    app.state.service.pool.shutdown()


def add_middleware(app: FastAPI, service: Service) -> None:
    """CORS for the configured origins (none: off), and, outermost, the bounds on every request body."""
    limits = service.config.limits
    if service.config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(service.config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key"],
        )
    app.add_middleware(
        BodyLimit,
        max_bytes=limits.max_request_bytes,
        key_valid=service.keys.valid,
        timeout_s=limits.body_timeout_s,
        max_uploads=limits.max_uploads,
    )


def create_app(service: Service, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The application over `service`: the built-in routes, then each of `routers` (new endpoints from outside this
    package; their routes reach the service and key scopes through metric.deploy.service.scopes' dependencies)."""
    docs = service.config.docs
    app = FastAPI(
        title="metric-faces verification service",
        version="1",
        debug=False,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.service = service
    add_middleware(app, service)
    add_error_handlers(app)
    for router in (*BUILT_IN_ROUTERS, *routers):
        app.include_router(router)
    return app
