"""The state one server shares between its routes: the gallery, API keys, audit log, upload limits and worker pool."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metric.deploy.gallery import Gallery
from metric.deploy.gallery.store import identity_name
from metric.deploy.probe import named
from metric.deploy.service.audit import AuditLog
from metric.deploy.service.batching import EmbedBatcher
from metric.deploy.service.errors import ApiError
from metric.deploy.service.keys import KeyStore
from metric.deploy.service.uploads import UploadLimits, decode_upload, describe
from metric.deploy.service.workers import WorkerPool
from metric.errors import ConfigError

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
        verifier = self.gallery.verifier
        if config.batch > 1:  # the workers' embed calls share forward passes
            verifier.embed_through(EmbedBatcher(verifier.embed_net, config.batch))
        self.channels = int(verifier.preprocess["channels"])
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


def check_name(name: str) -> str:
    """The name in NFC, or 400 quoting the name rule (the one the command line applies)."""
    try:
        return identity_name(name)
    except ConfigError as error:
        raise ApiError(400, "bad_name", str(error)) from None
