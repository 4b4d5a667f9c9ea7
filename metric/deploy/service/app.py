"""The FastAPI application over one gallery: the /v1 routes, API-key scopes, bounded uploads, the audit log, the web
page
and one JSON error shape. Every decision goes through the gallery's own code (front end, embedder, threshold, gate)."""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from datamodules.faces.frontend import NoFace
from datamodules.images import BadImage
from metric.deploy.gallery import Gallery
from metric.deploy.gallery.store import IdentityExists, identity_name
from metric.deploy.liveness import LivenessCheck, SpoofDetected
from metric.deploy.probe import SeveralFaces, named
from metric.deploy.service.audit import AuditLog
from metric.deploy.service.batching import EmbedBatcher
from metric.deploy.service.keys import KeyRecord, KeyStore, allows
from metric.deploy.service.uploads import UploadError, UploadLimits, check_file_count, decode_upload, describe
from metric.deploy.service.workers import Busy, WorkerPool, release_free_memory
from metric.errors import ConfigError

PAGE = Path(__file__).with_name("static") / "index.html"
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
UPLOAD_ADVICE = "Send a photo in which the face is clearly visible: frontal, well lit, in focus and not tiny."


@dataclass
class ServiceConfig:
    """What `python -m metric.serve` is started with."""

    gallery: Path
    ckpt: str | None = None
    liveness: str | None = None
    detect: bool = True
    workers: int = 8
    queue: int = 8
    batch: int = 8
    limits: UploadLimits = field(default_factory=UploadLimits)
    cors_origins: tuple[str, ...] = ()
    docs: bool = False  # /docs and /redoc (Swagger UI and ReDoc load their scripts from a CDN); /openapi.json always
    accept_new_threshold: bool = False  # start on a gallery whose recorded threshold or matcher the checkpoint changed


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class Service:
    """The gallery (model, front end, threshold, optional liveness gate), its API keys and audit log, the upload limits
    and the worker pool of one server."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.gallery = Gallery.open(
            config.gallery,
            ckpt=config.ckpt,
            detect=config.detect,
            liveness=config.liveness,
            enrolling=config.liveness is not None,
            accept_new_threshold=config.accept_new_threshold,
        )
        store = self.gallery.store
        self.keys = KeyStore(store.db, store.lock)
        self.audit = AuditLog(store.db, store.lock)
        if self.gallery.threshold_change:  # the operator asked for it: on the record
            self.audit.record("threshold", None, None, "changed", self.gallery.threshold_change)
        self.pool = WorkerPool(config.workers, config.queue)
        if config.batch > 1:  # the workers' embed calls share forward passes
            self.gallery.verifier.embed_pixels = EmbedBatcher(self.gallery.verifier.embed_pixels, config.batch)
        self.channels = int(self.gallery.verifier.preprocess["channels"])
        self.decoding = threading.BoundedSemaphore(config.limits.max_decodes)

    def decode(self, data: bytes, filename: str | None, index: int = 1, count: int = 1) -> np.ndarray:
        """The upload's pixels, named in any message about them (in a multi-image request: by index and name)."""
        source = describe(filename) if count == 1 else f"image {index} of {count} ({describe(filename)})"
        with self.decoding:  # at most limits.max_decodes full-size pixel buffers at once
            pixels = decode_upload(data, filename, self.channels, self.config.limits)
        return named(pixels, source, UPLOAD_ADVICE)

    def identity(self, name: str) -> dict:
        """An enrolled identity's name, image count and enrollment time; 404 when it is not enrolled."""
        entry = self.gallery.store.entry(name)
        if entry is None:
            raise ApiError(404, "not_found", f"identity {name!r} is not enrolled; GET /v1/identities lists who is.")
        return dict(zip(("name", "images", "enrolled_at"), entry))

    def info(self, admin: bool) -> dict:
        """What decisions use: the verifier's threshold and matcher; the checkpoint's path for admin keys only."""
        info = vars(self.gallery.store.info()).copy()
        info.pop("path")
        if not admin:
            info.pop("checkpoint")
        verifier = self.gallery.verifier
        info.update(threshold=verifier.threshold, matcher=verifier.matcher.name)
        return {
            **info,
            "front_end": verifier.faces.front_end.describe(),
            "detect": verifier.detect,
            "image_size": list(verifier.size),
            "channels": self.channels,
            "liveness_threshold": verifier.liveness.threshold if verifier.liveness else None,
            "limits": {k: v for k, v in vars(self.config.limits).items()},
        }


def liveness_json(check: LivenessCheck | None) -> dict | None:
    if check is None:
        return None
    return {"score": check.score, "threshold": check.threshold, "decision": check.decision, "live": check.live}


def check_name(name: str) -> str:
    """The name in NFC, or 400 quoting the name rule (the one the command line applies)."""
    try:
        return identity_name(name)
    except ConfigError as error:
        raise ApiError(400, "bad_name", str(error)) from None


def face_json(faces: int | None, box) -> dict | None:
    """How many faces the front end found in the probe and the box of the one used (None: no detection ran)."""
    if faces is None or faces < 0:
        return None
    return {"faces_found": faces, "box": [round(v, 1) for v in box] if box else None}


class BodyLimit:
    """ASGI middleware over every request body, before the app parses it:
    - a /v1 call without a valid API key gets 401 before one byte of its body is read;
    - a body over `max_bytes` gets 413 (by Content-Length, or by counting a streamed body);
    - a body that stalls for `timeout_s` between chunks gets 408 and its buffer is dropped;
    - at most `max_uploads` bodies are read at once (so at most max_uploads x max_bytes held): beyond, 503 with
      Retry-After at once."""

    def __init__(self, app, max_bytes: int, key_valid=None, timeout_s: float = 10.0, max_uploads: int = 16):
        self.app = app
        self.max_bytes = max_bytes
        self.key_valid = key_valid or (lambda key: True)
        self.timeout_s = timeout_s
        self.max_uploads = max_uploads
        self.uploads = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):  # no body to hold: /healthz
            return await self.app(scope, receive, send)  # answers under any upload load
        headers = dict(scope.get("headers") or [])
        if scope["path"].startswith("/v1/") and not self.key_valid(request_key(headers)):
            return await error_response(401, "unauthorized", NO_KEY)(scope, receive, send)
        length = headers.get(b"content-length")
        too_large = error_response(
            413, "too_large", f"the request is over {self.max_bytes:,} bytes; send fewer or smaller images."
        )
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await too_large(scope, receive, send)
        if self.uploads >= self.max_uploads:
            return await error_response(
                503, "busy", f"{self.uploads} uploads are being received; retry shortly.", {"Retry-After": "1"}
            )(scope, receive, send)
        self.uploads += 1  # one event loop: no lock needed
        size = 0
        try:
            chunks, more = [], True
            while more:
                try:
                    message = await asyncio.wait_for(receive(), self.timeout_s)
                except TimeoutError:
                    return await error_response(
                        408, "timeout", f"the request body stalled for {self.timeout_s:g} s; send it at once."
                    )(scope, receive, send)
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > self.max_bytes:
                    return await too_large(scope, receive, send)
            body = b"".join(chunks)
        finally:
            self.uploads -= 1
            if self.uploads == 0 and size > 2**20:  # the last large body: hand the freed buffers back
                release_free_memory()
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


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


def create_app(service: Service) -> FastAPI:
    """The application: routes bound to this service."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.pool.shutdown()

    docs = service.config.docs
    app = FastAPI(
        title="metric-faces verification service",
        version="1",
        debug=False,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
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
        key_valid=lambda key: service.keys.check(key) is not None,
        timeout_s=limits.body_timeout_s,
        max_uploads=limits.max_uploads,
    )

    def scope(needed: str):
        def check(request: Request) -> KeyRecord:
            record = service.keys.check(
                request_key({k.lower().encode("latin-1"): v.encode("latin-1") for k, v in request.headers.items()})
            )
            if record is None:
                raise ApiError(401, "unauthorized", NO_KEY)
            if not allows(record.scope, needed):
                raise ApiError(403, "forbidden", f"this key's scope ({record.scope}) does not allow {needed} calls.")
            return record

        return Depends(check)

    async def read_uploads(uploads: list[UploadFile]) -> list[tuple[bytes, str | None]]:
        """The uploads' bytes and client names; decoding happens in the workers, off the event loop."""
        check_file_count(len(uploads), limits)
        return [(await upload.read(), upload.filename) for upload in uploads]

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, error: UploadError):
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(Busy)
    async def busy(request: Request, error: Busy):
        return error_response(503, "busy", str(error), {"Retry-After": "1"})

    @app.exception_handler(SpoofDetected)
    async def spoof(request: Request, error: SpoofDetected):
        return error_response(422, "presentation_attack", str(error))

    @app.exception_handler(BadImage)
    async def bad_image(request: Request, error: BadImage):
        code = (
            "no_face"
            if isinstance(error, NoFace)
            else "several_faces"
            if isinstance(error, SeveralFaces)
            else "bad_image"
        )
        return error_response(400, code, str(error))

    @app.exception_handler(IdentityExists)
    async def exists(request: Request, error: IdentityExists):
        return error_response(403, "forbidden", f"{error} An enroll key creates new identities only: use an admin key.")

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, error: ConfigError):
        return error_response(400, "bad_request", str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors())
        return error_response(400, "bad_request", f"the request is incomplete or malformed ({fields}).")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return error_response(error.status_code, STATUS_CODES.get(error.status_code, "error"), str(error.detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception):
        return error_response(500, "internal", "the server failed on this request; it has been logged.")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        try:
            with service.gallery.store.lock:
                service.gallery.store.db.execute("SELECT 1").fetchone()
        except Exception:
            return error_response(503, "not_ready", "the gallery database cannot be read.")
        return {"status": "ready", "identities": service.gallery.store.info().identities}

    @app.get("/v1/info")
    def info(key: KeyRecord = scope("verify")):
        return service.info(admin=allows(key.scope, "admin"))

    @app.post("/v1/identities/{name:path}/images")
    async def enroll(
        name: str, images: list[UploadFile] = File(...), replace: bool = Query(False), key: KeyRecord = scope("enroll")
    ):
        name = check_name(name)
        admin = allows(key.scope, "admin")
        if replace and not admin:
            raise ApiError(
                403,
                "forbidden",
                "replace=true replaces an identity's template: an admin action (an "
                "enroll key creates new identities only).",
            )
        uploads = await read_uploads(images)

        def job():
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

        return await service.pool.run(job)

    @app.post("/v1/verify")
    async def verify(identity: str = Form(...), image: UploadFile = File(...), key: KeyRecord = scope("verify")):
        identity = check_name(identity)
        data = await image.read()

        def job():
            service.identity(identity)
            result = service.gallery.verify(identity, service.decode(data, image.filename))
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

        return await service.pool.run(job)

    @app.post("/v1/identify")
    async def identify(
        image: UploadFile = File(...), top_k: int = Form(5, ge=1, le=100), key: KeyRecord = scope("verify")
    ):
        data = await image.read()

        def job():
            found = service.gallery.identify(service.decode(data, image.filename), top_k)
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

        return await service.pool.run(job)

    @app.get("/v1/identities")
    def identities(key: KeyRecord = scope("verify")):
        return {"identities": [{"name": n, "images": c, "enrolled_at": t} for n, c, t in service.gallery.store.list()]}

    @app.get("/v1/identities/{name:path}")
    def identity(name: str, key: KeyRecord = scope("verify")):
        return service.identity(check_name(name))

    @app.delete("/v1/identities/{name:path}")
    def remove(name: str, key: KeyRecord = scope("admin")):
        name = check_name(name)
        service.identity(name)
        service.gallery.remove(name, also=lambda: service.audit.record("remove", key.key_id, name, "ok"))
        return Response(status_code=204)

    app.state.service = service
    return app
