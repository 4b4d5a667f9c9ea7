"""Embedded default dataset: procedural face identities, rendered once to a lossless PNG cache, then loaded."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.atomic import MANIFEST, atomic_directory, is_complete
from datamodules.base import IdentityDataModule
from datamodules.images import check_image_size
from datamodules.sources.face_renderer import FaceCondition, FaceIdentity, render_face
from datamodules.split import SPLITS, IdentitySplit
from metric.errors import ConfigError

GENERATOR_VERSION = 2  # bump when the renderer changes, so old caches are not reused


class SyntheticFacesDataModule(IdentityDataModule):
    """Deterministic synthetic faces; train, val and test identities are disjoint by construction."""

    def __init__(
        self,
        cache_dir: str,
        train_identities: int = 1000,
        val_identities: int = 60,
        test_identities: int = 60,
        images_per_identity: int = 6,
        image_size: tuple[int, int] = (48, 48),
        generator_seed: int = 0,
        **batching,
    ):
        super().__init__(**batching)
        self.cache_dir = Path(cache_dir)
        self.counts = {"train": train_identities, "val": val_identities, "test": test_identities}
        self.images_generated = images_per_identity
        self.image_size = check_image_size(image_size)
        self.generator_seed = generator_seed

    @property
    def settings(self) -> dict:
        return {
            "version": GENERATOR_VERSION,
            "identities": self.counts,
            "images_per_identity": self.images_generated,
            "image_size": list(self.image_size),
            "seed": self.generator_seed,
        }

    @property
    def cache_path(self) -> Path:
        key = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:12]
        return self.cache_dir / f"synthetic-{key}"

    def prepare_data(self) -> None:
        if not is_complete(self.cache_path):
            write_cache(self.cache_path, self.settings)

    def load_splits(self) -> dict[str, IdentitySplit]:
        self.prepare_data()
        splits = read_cache(self.cache_path)
        if self.face.active:  # the rendered PNGs through the face front end, like any photo
            for name, split in splits.items():
                decoded = self.detect_faces(name, split.sources, 3, self.image_size, self.cache_dir)
                keep = [i for i, d in enumerate(decoded) if isinstance(d, np.ndarray)]
                self.notes[f"faces_missed_{name}"] = len(decoded) - len(keep)
                if not keep:
                    raise ConfigError(
                        f"{self.face.describe()} found no face in the {name} split of the synthetic "
                        "faces; use face=none for them."
                    )
                splits[name] = IdentitySplit(
                    np.stack([decoded[i] for i in keep]), split.labels[keep], [split.sources[i] for i in keep]
                )
        return splits


def render_identity_images(identity_index: int, count: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """All images of one identity; each identity has its own seeded stream, so it never depends on the others."""
    rng = np.random.default_rng([seed, identity_index])
    identity = FaceIdentity.sample(rng)
    return [render_face(identity, FaceCondition.sample(rng), size[0], size[1]) for _ in range(count)]


def write_cache(path: Path, settings: dict) -> None:
    """Render every image to PNG in a temporary folder, then rename it into place: never a half-written cache."""
    with atomic_directory(path) as tmp:
        rows = []
        identity_index = 0
        for split in SPLITS:
            for _ in range(settings["identities"][split]):
                images = render_identity_images(
                    identity_index, settings["images_per_identity"], settings["image_size"], settings["seed"]
                )
                for n, image in enumerate(images):
                    name = f"{identity_index:05d}_{n:02d}.png"
                    Image.fromarray(image).save(tmp / name, format="PNG")
                    rows.append((name, identity_index, split))
                identity_index += 1
        with open(tmp / "index.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "identity", "split"])
            writer.writerows(rows)
        (tmp / MANIFEST).write_text(json.dumps(settings, indent=2))  # written last: marks a complete cache


def read_cache(path: Path) -> dict[str, IdentitySplit]:
    """Load the PNG cache into one uint8 array per split."""
    by_split: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    with open(path / "index.csv", newline="") as f:
        for row in csv.DictReader(f):
            by_split[row["split"]].append((row["file"], int(row["identity"])))
    splits = {}
    for split, rows in by_split.items():
        images = np.stack([np.asarray(Image.open(path / name).convert("RGB")) for name, _ in rows])
        labels = np.array([identity for _, identity in rows], dtype=np.int64)
        splits[split] = IdentitySplit(images=images, labels=labels, sources=[str(path / name) for name, _ in rows])
    return splits
