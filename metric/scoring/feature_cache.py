"""Embeddings of a frozen embedder, computed once per distinct image and kept (in memory, and on disk with a cache
folder): what makes an adapt epoch a matrix product and a cross-validation fold free of forward passes.

Rows are keyed by a hash of the image's pixels (and shape), so the same aligned crop is never embedded twice,
whichever dataset, split or fold it comes from; the file is keyed by the embedder's spec (model file sha256
and settings included), so another model or setting never reads these rows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from datamodules.atomic import write_file_atomically
from metric.scoring.embed import Model, embed_images


def pixel_key(image: np.ndarray) -> str:
    digest = hashlib.sha1(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class FeatureCache:
    """`embed(images)`: the embedder's embeddings of uint8 images (N, H, W, C), each distinct image computed once;
    `computed` counts the images that went through the embedder (what a test of the cache checks)."""

    def __init__(self, embedder: Model, spec: dict, cache_dir: str | Path | None = None):
        self.embedder = embedder
        self.rows: dict[str, np.ndarray] = {}
        self.computed = 0
        self.path = None
        if cache_dir is not None:
            key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
            self.path = Path(cache_dir) / f"embeddings-{key}.npz"
            if self.path.is_file():
                with np.load(self.path) as stored:
                    self.rows = dict(zip(stored["keys"].tolist(), stored["embeddings"]))

    def embed(self, images: np.ndarray) -> np.ndarray:
        keys = [pixel_key(image) for image in images]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self.rows}.values())
        if missing:
            fresh = embed_images(self.embedder, images[missing])
            self.rows.update(zip((keys[i] for i in missing), fresh))
            self.computed += len(missing)
            self.save()
        if not keys:
            return np.zeros((0, 0), np.float32)
        return np.stack([self.rows[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.rows))
        embeddings = np.stack(list(self.rows.values())).astype(np.float32)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=keys, embeddings=embeddings)

        write_file_atomically(self.path, write)
