"""The identity routes: enroll (POST /v1/identities/{name}/images), list, show and remove enrolled identities."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import Response

from metric.deploy.service.errors import ApiError
from metric.deploy.service.keys import KeyRecord, allows
from metric.deploy.service.scopes import current_service, require_scope
from metric.deploy.service.state import Service, check_name
from metric.deploy.service.uploads import UploadLimits, check_file_count

REPLACE_NEEDS_ADMIN = (
    "replace=true replaces an identity's template: an admin action (an enroll key creates new identities only)."
)

router = APIRouter()


async def read_uploads(uploads: list[UploadFile], limits: UploadLimits) -> list[tuple[bytes, str | None]]:
    """The uploads' bytes and client names; decoding happens in the workers, off the event loop."""
    check_file_count(len(uploads), limits)
    return [(await upload.read(), upload.filename) for upload in uploads]


def enroll_job(
    service: Service, key: KeyRecord, name: str, uploads: list[tuple[bytes, str | None]], replace: bool, admin: bool
) -> dict:
    """One enrollment, in a worker: decode every image, then write the template and its audit row together."""
    arrays = [service.decode(data, filename, i, len(uploads)) for i, (data, filename) in enumerate(uploads, 1)]
    service.gallery.enroll(
        name,
        arrays,
        replace=replace,
        create_only=not admin,
        also=lambda: service.audit.record(
            "enroll", key.key_id, name, "ok", {"images": len(arrays), "replace": replace}
        ),
    )
    return service.identity(name)


@router.post("/v1/identities/{name:path}/images", response_model=None)
async def enroll(
    name: str,
    images: list[UploadFile] = File(...),
    replace: bool = Query(False),
    key: KeyRecord = Depends(require_scope("enroll")),
    service: Service = Depends(current_service),
) -> dict:
    name = check_name(name)
    admin = allows(key.scope, "admin")
    if replace and not admin:
        raise ApiError(403, "forbidden", REPLACE_NEEDS_ADMIN)
    uploads = await read_uploads(images, service.config.limits)
    return await service.pool.run(enroll_job, service, key, name, uploads, replace, admin)


@router.get("/v1/identities", response_model=None, dependencies=[Depends(require_scope("verify"))])
def identities(service: Service = Depends(current_service)) -> dict:
    return {"identities": [{"name": n, "images": c, "enrolled_at": t} for n, c, t in service.gallery.store.list()]}


@router.get("/v1/identities/{name:path}", response_model=None, dependencies=[Depends(require_scope("verify"))])
def identity(name: str, service: Service = Depends(current_service)) -> dict:
    return service.identity(check_name(name))


@router.delete("/v1/identities/{name:path}", response_model=None)
def remove(
    name: str, key: KeyRecord = Depends(require_scope("admin")), service: Service = Depends(current_service)
) -> Response:
    name = check_name(name)
    service.identity(name)
    service.gallery.remove(name, also=lambda: service.audit.record("remove", key.key_id, name, "ok"))
    return Response(status_code=204)
