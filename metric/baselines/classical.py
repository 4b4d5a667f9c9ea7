"""Classical face-verification baselines without a network: raw pixels, local binary patterns, a Fisher projection,
and the `baseline` config group that combines them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import make_pipeline

from metric.errors import ConfigError

NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]


def grey(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, H, W) luminance."""
    images = images.astype(np.float32)
    if images.shape[-1] == 1:
        return images[..., 0]
    return images[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def pixel_features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32)


def uniform_pattern_table() -> tuple[np.ndarray, int]:
    """Maps the 256 8-neighbour codes to the 58 'uniform' patterns (at most two 0/1 transitions) plus one bin
    for all others, as in Ojala et al.'s LBP^u2."""
    table = np.empty(256, dtype=np.int64)
    uniform = 0
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        if sum(bits[i] != bits[(i + 1) % 8] for i in range(8)) <= 2:
            table[code] = uniform
            uniform += 1
        else:
            table[code] = -1
    table[table < 0] = uniform
    return table, uniform + 1


def lbp_features(images: np.ndarray, grid: int = 7) -> np.ndarray:
    """Uniform LBP codes of each pixel (3x3 neighbourhood), histogrammed in a grid x grid of cells, each cell's
    histogram normalised to sum 1; the square root makes cosine similarity the Hellinger kernel."""
    pixels = grey(images)
    height, width = pixels.shape[1:]
    if height < grid + 2 or width < grid + 2:
        raise ConfigError(f"LBP features need images of at least {grid + 2}x{grid + 2} pixels, got {height}x{width}.")
    centre = pixels[:, 1:-1, 1:-1]
    codes = np.zeros(centre.shape, dtype=np.int64)
    for bit, (dy, dx) in enumerate(NEIGHBOURS):
        neighbour = pixels[:, 1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx]
        codes |= (neighbour >= centre).astype(np.int64) << bit
    table, bins = uniform_pattern_table()
    codes = table[codes]
    cells = []
    for rows in np.array_split(np.arange(codes.shape[1]), grid):
        for cols in np.array_split(np.arange(codes.shape[2]), grid):
            block = codes[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].reshape(len(codes), -1)
            counts = np.stack([np.bincount(row, minlength=bins) for row in block]).astype(np.float32)
            cells.append(np.sqrt(counts / block.shape[1]))
    return np.concatenate(cells, axis=1)


class FisherProjection:
    """Whitened PCA to `pca_dim` dimensions, then linear discriminant analysis over the training identities (the
    Fisherfaces recipe, with scikit-learn's PCA and LDA); fit on training identities only, applied to any others.
    LDA's eigen solver keeps the within-identity scatter whitened, which is what a cosine score needs."""

    def __init__(self, pca_dim: int = 100, shrinkage: float = 1e-3):
        self.pca_dim = pca_dim
        self.shrinkage = shrinkage

    def fit(self, features: np.ndarray, labels: np.ndarray) -> FisherProjection:
        classes = np.unique(labels)
        if classes.size < 2:
            raise ConfigError("a Fisher projection needs at least 2 training identities.")
        rank = np.linalg.matrix_rank(features - features.mean(0)) if len(features) > classes.size else 0
        keep = min(self.pca_dim, len(features) - classes.size, int(rank))
        if keep < 1:
            raise ConfigError(
                f"a Fisher projection needs pca_dim >= 1 (got {self.pca_dim}) and more training images "
                f"than identities (got {len(features)} images of {classes.size} identities)."
            )
        self.pipeline = make_pipeline(
            PCA(n_components=keep, whiten=True, svd_solver="full"),
            LinearDiscriminantAnalysis(solver="eigen", shrinkage=self.shrinkage),
        )
        self.pipeline.fit(features, labels)
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        return self.pipeline.transform(features)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


FEATURES = {"pixels": pixel_features, "lbp": lbp_features}
PROJECTIONS = ("none", "fisher")


class ClassicalBaseline:
    """`baseline=default`: features (`pixels`: the image as a vector; `lbp`: uniform LBP histograms in a 7x7 grid
    of cells), scored by cosine, optionally through a Fisher projection (`projection=fisher`, `pca_dim`) fit on
    the training identities only."""

    def __init__(self, features: str = "pixels", projection: str = "none", pca_dim: int = 100):
        if features not in FEATURES:
            raise ConfigError(f"baseline.features={features!r} is not one of {', '.join(FEATURES)}.")
        if projection not in PROJECTIONS:
            raise ConfigError(f"baseline.projection={projection!r} is not one of {', '.join(PROJECTIONS)}.")
        if isinstance(pca_dim, bool) or not isinstance(pca_dim, int) or pca_dim < 1:
            raise ConfigError(f"baseline.pca_dim={pca_dim!r} must be a positive integer, e.g. 100.")
        self.features, self.projection, self.pca_dim = features, projection, pca_dim
        self.fisher: FisherProjection | None = None
        self.extract = FEATURES[features]
        self.feature_name = "raw pixels" if features == "pixels" else "LBP histograms"

    def use_embedder(self, embed: Callable[[np.ndarray], np.ndarray], name: str) -> None:
        """Features from a pretrained embedder (metric.raw_pixels model=dlib|onnx) instead of `features`."""
        self.extract, self.feature_name = embed, name

    @property
    def description(self) -> str:
        projection = " + Fisher projection (fit on training identities)" if self.projection == "fisher" else ""
        return f"{self.feature_name}{projection}"

    def fit(self, train_images: np.ndarray, train_labels: np.ndarray) -> ClassicalBaseline:
        if self.projection == "fisher":
            self.fisher = FisherProjection(self.pca_dim).fit(self.extract(train_images), train_labels)
        return self

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Unit feature vectors of uint8 images (N, H, W, C)."""
        x = self.extract(images)
        return unit_rows(self.fisher.transform(x) if self.fisher is not None else x)
