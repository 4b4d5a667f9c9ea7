"""Loading a dataset from the lossless preprocessing cache vs decoding the original JPEGs, side by side.

Builds a folder tree of CelebA-sized JPEGs (178x218), then times in alternating rounds:
decode (no cache: open, decode, convert, resize every file) and cached (read the .npy cache).
Run: python bench/cache_load.py [--images 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.sources.folder import FolderDataModule


def make_tree(root: Path, images: int, per_identity: int = 20) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)
    for i in range(images):
        folder = root / f"id{i // per_identity:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 40, base.shape, dtype=np.uint8)
        Image.fromarray(base // 2 + noise).save(folder / f"{i:06d}.jpg", quality=90)


def load_seconds(root: Path, cache_dir: Path | None) -> float:
    dm = FolderDataModule(
        root=str(root),
        image_size=(112, 96),
        channels=3,
        cache_dir=str(cache_dir) if cache_dir else None,
        batch_identities=2,
        batch_images_per_identity=2,
    )
    start = time.perf_counter()
    dm.setup()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "faces", Path(tmp) / "cache"
        make_tree(root, args.images)
        load_seconds(root, cache)  # writes the cache once
        decode, cached = [], []
        for r in range(args.rounds):
            decode.append(load_seconds(root, None))
            cached.append(load_seconds(root, cache))
            print(f"round {r + 1}: decode {decode[-1]:.2f} s, cached {cached[-1]:.3f} s")
    d, c = np.median(decode), np.median(cached)
    print(
        f"median: decode {d:.2f} s, cached {c:.3f} s, speed-up cached/decode {d / c:.1f}x "
        f"({args.images} JPEGs 178x218 -> 112x96 RGB)"
    )


if __name__ == "__main__":
    main()
