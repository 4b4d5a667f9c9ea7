"""The routes that say whether the server is up (/healthz) and can read its gallery (/readyz); no key needed."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from metric.deploy.service.errors import error_response
from metric.deploy.service.scopes import current_service
from metric.deploy.service.state import Service

router = APIRouter()


@router.get("/healthz", response_model=None)
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(service: Service = Depends(current_service)) -> dict | JSONResponse:
    try:
        with service.gallery.store.lock:
            service.gallery.store.db.execute("SELECT 1").fetchone()
    except Exception:
        return error_response(503, "not_ready", "the gallery database cannot be read.")
    return {"status": "ready", "identities": service.gallery.store.info().identities}
