"""The decision routes: verify one identity (/v1/verify), identify among all (/v1/identify), and what they use."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, UploadFile

from metric.deploy.liveness import LivenessCheck
from metric.deploy.service.keys import KeyRecord, allows
from metric.deploy.service.scopes import current_service, require_scope
from metric.deploy.service.state import Service, check_name

router = APIRouter()


def liveness_json(check: LivenessCheck | None) -> dict | None:
    """The liveness stage of a decision (None: no liveness gate)."""
    if check is None:
        return None
    return {"score": check.score, "threshold": check.threshold, "decision": check.decision, "live": check.live}


def face_json(faces: int | None, box: tuple[float, ...] | None) -> dict | None:
    """How many faces the front end found in the probe and the box of the one used (None: no detection ran)."""
    if faces is None or faces < 0:
        return None
    return {"faces_found": faces, "box": [round(v, 1) for v in box] if box else None}


@router.get("/v1/info", response_model=None)
def info(key: KeyRecord = Depends(require_scope("verify")), service: Service = Depends(current_service)) -> dict:
    return service.info(admin=allows(key.scope, "admin"))


def verify_job(service: Service, key: KeyRecord, identity: str, data: bytes, filename: str | None) -> dict:
    """One verification, in a worker: decode, decide, record the decision (never the probe) in the audit log."""
    service.identity(identity)
    result = service.gallery.verify(identity, service.decode(data, filename))
    answer = {
        "identity": identity,
        "decision": result.decision,
        "accepted": result.accepted,
        "score": None if result.spoof else result.score,
        "threshold": result.threshold,
        "matcher": result.matcher,
        "liveness": liveness_json(result.liveness),
        "face": face_json(result.faces, result.box),
    }
    service.audit.record(
        "verify",
        key.key_id,
        identity,
        result.decision,
        {k: answer[k] for k in ("score", "threshold", "accepted", "liveness")},
    )
    return answer


@router.post("/v1/verify", response_model=None)
async def verify(
    identity: str = Form(...),
    image: UploadFile = File(...),
    key: KeyRecord = Depends(require_scope("verify")),
    service: Service = Depends(current_service),
) -> dict:
    identity = check_name(identity)
    data = await image.read()
    return await service.pool.run(verify_job, service, key, identity, data, image.filename)


def identify_job(service: Service, key: KeyRecord, data: bytes, filename: str | None, top_k: int) -> dict:
    """One identification, in a worker: decode, search the gallery, record the outcome in the audit log."""
    found = service.gallery.identify(service.decode(data, filename), top_k)
    spoofed = found.liveness is not None and not found.liveness.live
    best = found.matches[0].identity if found.known else None
    answer = {
        "identity": best or ("rejected: presentation attack" if spoofed else "unknown"),
        "known": found.known,
        "threshold": service.gallery.verifier.threshold,
        "matches": [{"identity": m.identity, "score": m.score} for m in found.matches],
        "liveness": liveness_json(found.liveness),
        "face": face_json(found.face.faces, found.face.box) if found.face else None,
    }
    service.audit.record(
        "identify",
        key.key_id,
        best,
        "spoof" if spoofed else "known" if best else "unknown",
        {"top": answer["matches"][:1], "liveness": answer["liveness"]},
    )
    return answer


@router.post("/v1/identify", response_model=None)
async def identify(
    image: UploadFile = File(...),
    top_k: int = Form(5, ge=1, le=100),
    key: KeyRecord = Depends(require_scope("verify")),
    service: Service = Depends(current_service),
) -> dict:
    data = await image.read()
    return await service.pool.run(identify_job, service, key, data, image.filename, top_k)
