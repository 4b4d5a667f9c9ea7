"""Teachers for distillation and self-training: a frozen model (a metric.train checkpoint, or an outside embedder
such as dlib or an ONNX file) and the on-disk cache of its embeddings of the training images."""

from __future__ import annotations

import numpy as np
import torch

from datamodules.fingerprint import file_sha256
from datamodules.normalisation import to_uint8_images
from metric.errors import ConfigError
from metric.model.adapted import outside_embedder
from metric.model.embedders import ExternalEmbedder
from metric.scoring.embed import Model, embed_batch
from metric.scoring.feature_cache import FeatureCache, pixel_key
from metric.scoring.load import LoadedModel, build_embedder, load_for_eval


class Teacher:
    """A frozen model and the cache of its embeddings: `targets(images)` for a batch of model inputs."""

    def __init__(
        self,
        model: Model,
        spec: dict,
        embedding_dim: int,
        cache_dir: str | None = None,
        loaded: LoadedModel | None = None,
    ):
        self.model, self.embedding_dim, self.loaded = model, embedding_dim, loaded
        self.cache = FeatureCache(model, spec, cache_dir)
        self.looked_up = self.computed_online = 0

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's embeddings of these model inputs: from the cache when it has every image, else computed."""
        keys = [pixel_key(image) for image in to_uint8_images(images)]
        if all(key in self.cache.rows for key in keys):
            self.looked_up += len(keys)
            return torch.from_numpy(np.stack([self.cache.rows[k] for k in keys])).to(images.device)
        self.computed_online += len(keys)
        model = self.model.to(images.device) if isinstance(self.model, torch.nn.Module) else self.model
        with torch.no_grad():
            return embed_batch(model, images).to(images.device)


def build_teacher(node) -> Teacher:
    """The `teacher` config node: `ckpt` (a metric.train checkpoint) or `model` (dlib, onnx), with its cache."""
    cache_dir = node.get("cache_dir")
    if node.get("model") is not None:
        embedder = build_embedder(node.model)
        return Teacher(embedder, embedder.spec(), embedder.embedding_dim, cache_dir)
    loaded = load_for_eval(node.ckpt)
    if isinstance(loaded.net, ExternalEmbedder):  # a calibrated bundle: the outside embedder it holds teaches
        return Teacher(loaded.net, loaded.net.spec(), loaded.net.embedding_dim, cache_dir)
    if outside_embedder(loaded.net) is not None:
        raise ConfigError(
            f"teacher.ckpt={node.ckpt}: an adapted embedder cannot teach yet; use its embedder "
            "(teacher=dlib or teacher=onnx), or a metric.train checkpoint."
        )
    for p in loaded.net.parameters():
        p.requires_grad_(False)
    spec = {"ckpt_sha256": file_sha256(loaded.path), "net": loaded.record["net"]}
    return Teacher(loaded.net.eval(), spec, loaded.net.embedding_dim, cache_dir, loaded)


def teacher_embedder(teacher: Teacher) -> ExternalEmbedder | None:
    """The outside embedder a teacher is, whose input the student's datamodule must prepare (None: a checkpoint)."""
    return teacher.model if isinstance(teacher.model, ExternalEmbedder) else None
