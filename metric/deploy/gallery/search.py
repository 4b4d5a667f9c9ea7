"""1:N search over gallery templates: exact (float32, float16 or int8 with a scale per vector) or a FAISS index."""

from __future__ import annotations

import numpy as np
import torch

from metric.deploy.gallery.store import INDEXES
from metric.errors import ConfigError


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) of the k best per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


class ExactIndex:
    """Inner-product search over unit templates, one matrix product and a top-k per batch of queries.

    storage="float32" keeps the matrix as is; "float16" halves it; "int8" keeps int8 codes and one float32
    scale per template (a quarter). Compact matrices are scored chunk by chunk, so resident memory stays
    near the stored size.
    """

    def __init__(self, templates: np.ndarray, storage: str = "float32", chunk_rows: int = 1 << 14):
        self.storage = storage
        self.chunk_rows = chunk_rows
        templates = np.ascontiguousarray(templates, dtype=np.float32)
        self.count, self.dim = templates.shape
        if storage == "float32":
            self.matrix = torch.from_numpy(templates)
        elif storage == "float16":
            self.matrix = torch.from_numpy(templates.astype(np.float16))
        elif storage == "int8":
            scale = np.abs(templates).max(1, keepdims=True) / 127.0 + 1e-12
            self.scale = torch.from_numpy(scale.astype(np.float32).ravel())
            self.matrix = torch.from_numpy(np.round(templates / scale).astype(np.int8))
        else:
            raise ConfigError(f"storage={storage!r} is not one of float32, float16, int8.")

    @property
    def nbytes(self) -> int:
        extra = self.scale.numel() * 4 if self.storage == "int8" else 0
        return self.matrix.numel() * self.matrix.element_size() + extra

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (indices, scores) per query: each chunk of templates is scored with one matrix product and
        reduced to its own top-k, then the chunks' candidates are merged; no full score matrix is kept."""
        if self.count == 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        k = min(k, self.count)
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        values, indices = [], []
        with torch.no_grad():
            for start in range(0, self.count, self.chunk_rows):
                block = self.matrix[start : start + self.chunk_rows]
                part = q @ (block if self.storage == "float32" else block.float()).T
                if self.storage == "int8":
                    part *= self.scale[start : start + self.chunk_rows]
                v, i = torch.topk(part, min(k, part.shape[1]), dim=1)
                values.append(v)
                indices.append(i + start)
            v, pick = torch.topk(torch.cat(values, 1), k, dim=1)
            i = torch.gather(torch.cat(indices, 1), 1, pick)
        return i.numpy(), v.numpy()


class FaissIndex:
    """An approximate FAISS index (HNSW or IVF) over unit templates, inner-product metric.

    storage picks what the index keeps per template: "float32" the vectors themselves (IVF-flat, HNSW-flat),
    "float16" or "int8" a scalar-quantized code of 2 or 1 bytes per dimension (a half or a quarter).
    """

    def __init__(
        self,
        templates: np.ndarray,
        kind: str,
        storage: str = "float32",
        hnsw_m: int = 32,
        ef_search: int = 128,
        nprobe: int = 64,
    ):
        try:
            import faiss
        except ImportError:
            raise ConfigError(f"index={kind} needs FAISS: pip install faiss-cpu (or use index=exact).") from None
        codes = {"float32": None, "float16": faiss.ScalarQuantizer.QT_fp16, "int8": faiss.ScalarQuantizer.QT_8bit}
        if storage not in codes:
            raise ConfigError(f"storage={storage!r} is not one of {', '.join(codes)}.")
        templates = np.ascontiguousarray(templates, dtype=np.float32)
        self.count, dim = templates.shape
        self.storage = storage
        inner = faiss.METRIC_INNER_PRODUCT
        if kind == "hnsw":
            if codes[storage] is None:
                self.index = faiss.IndexHNSWFlat(dim, hnsw_m, inner)
            else:
                self.index = faiss.IndexHNSWSQ(dim, codes[storage], hnsw_m, inner)
            self.index.hnsw.efSearch = ef_search
        else:
            lists = max(1, int(np.sqrt(max(self.count, 1))))
            quantizer = faiss.IndexFlatIP(dim)
            if codes[storage] is None:
                self.index = faiss.IndexIVFFlat(quantizer, dim, lists, inner)
            else:
                self.index = faiss.IndexIVFScalarQuantizer(quantizer, dim, lists, codes[storage], inner)
            self.index.cp.max_points_per_centroid = 64  # a smaller training sample: less transient memory
            self.index.nprobe = min(nprobe, lists)
            self.quantizer = quantizer  # the IVF index does not own its coarse quantizer
        if self.count:
            if not self.index.is_trained:
                self.index.train(templates)
            self.index.add(templates)

    @property
    def code_bytes(self) -> int:
        """Bytes the index keeps per template vector (links and list ids not counted)."""
        import faiss

        held = faiss.downcast_index(self.index.storage) if hasattr(self.index, "hnsw") else self.index
        return int(held.code_size)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.count == 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        scores, indices = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.count))
        return indices, scores


def build_index(templates: np.ndarray, storage: str = "float32", index: str = "exact"):
    if index not in INDEXES:
        raise ConfigError(f"index={index!r} is not one of {', '.join(INDEXES)}.")
    return ExactIndex(templates, storage) if index == "exact" else FaissIndex(templates, index, storage)
