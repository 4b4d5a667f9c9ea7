"""A toy endpoint (GET /v1/toy/echo) from outside the service package, to test the service's extension point."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from metric.deploy.service.keys import KeyRecord
from metric.deploy.service.scopes import current_service, require_scope
from metric.deploy.service.state import Service

router = APIRouter()
not_a_router = "a string, not an APIRouter"  # for the test that the command line refuses it


@router.get("/v1/toy/echo", response_model=None)
def echo(
    text: str = Query("hello"),
    key: KeyRecord = Depends(require_scope("enroll")),
    service: Service = Depends(current_service),
) -> dict:
    """The text back, with the caller's key id and scope and the number of identities in the gallery."""
    return {
        "echo": text,
        "key_id": key.key_id,
        "scope": key.scope,
        "identities": service.gallery.store.info().identities,
    }
