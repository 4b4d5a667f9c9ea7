"""A toy outside embedder added from outside the package: a fixed random projection of the grey pixels, registered
under the kind `toy` so checkpoints that record it load again (a new file plus conf/model/toy.yaml)."""

from __future__ import annotations

import numpy as np

from metric.model.embedders import EMBEDDERS, ExternalEmbedder


@EMBEDDERS.register
class ToyEmbedder(ExternalEmbedder):
    kind = "toy"

    def __init__(self, embedding_dim: int = 24, input_size: tuple[int, int] = (16, 16), seed: int = 0):
        self.embedding_dim, self.input_size, self.channels, self.seed = embedding_dim, tuple(input_size), 1, seed
        pixels = self.input_size[0] * self.input_size[1]
        self.projection = np.random.default_rng(seed).standard_normal((pixels, embedding_dim)).astype(np.float32)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        flat = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
        return (flat - flat.mean(axis=1, keepdims=True)) @ self.projection

    def spec(self) -> dict:
        size = list(self.input_size)
        return {"kind": self.kind, "embedding_dim": self.embedding_dim, "input_size": size, "seed": self.seed}
