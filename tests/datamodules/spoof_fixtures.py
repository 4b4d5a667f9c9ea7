"""A tiny CelebA-Spoof tree in the exact official layout: Data/<split>/<subject>/<live|spoof>/<image>.jpg|png with
<image>_BB.txt ('x y w h score' at the 224 x 224 reference scale), and metas/intra_test/{train,test}_label.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# spoof type, illumination, environment of the presentations each subject gets (live first)
PRESENTATIONS = [(0, 0, 0), (0, 0, 0), (1, 1, 1), (3, 2, 2), (7, 3, 1), (9, 4, 2)]
FACE_COLOUR = (200, 150, 120)
BOX_224 = (56, 40, 112, 140)  # x, y, w, h at the 224 scale


def face_image(rng: np.random.Generator, size: tuple[int, int], spoof_type: int) -> np.ndarray:
    """A flat background with a face-coloured box where BOX_224 lies (scaled to this size); attacks add a stripe
    texture whose period depends on the attack (print: fine, replay: coarse), so a tiny net can learn them."""
    width, height = size
    image = np.full((height, width, 3), 40, np.uint8) + rng.integers(0, 20, (height, width, 1), dtype=np.uint8)
    x, y, w, h = BOX_224
    x0, y0 = int(x * width / 224), int(y * height / 224)
    x1, y1 = int((x + w) * width / 224), int((y + h) * height / 224)
    image[y0:y1, x0:x1] = FACE_COLOUR
    if spoof_type:
        period = 2 if spoof_type < 7 else 4
        stripes = ((np.arange(width) // period) % 2 * 60).astype(np.uint8)
        image = np.clip(image.astype(int) - stripes[None, :, None], 0, 255).astype(np.uint8)
    return image


def build_celeba_spoof(
    root: Path,
    train_subjects: int = 8,
    test_subjects: int = 4,
    seed: int = 0,
    presentations=PRESENTATIONS,
    size: tuple[int, int] = (150, 180),
) -> dict[str, dict]:
    """Write the tree; returns {split: {label key: 44 labels}} as written. Subject ids are disjoint across splits;
    images alternate between .jpg and .png, and between two sizes, so the box must be scaled per image."""
    rng = np.random.default_rng(seed)
    labels: dict[str, dict] = {"train": {}, "test": {}}
    subject = 1000
    for split, count in (("train", train_subjects), ("test", test_subjects)):
        for _ in range(count):
            subject += 1
            for number, (spoof_type, light, place) in enumerate(presentations):
                live = spoof_type == 0
                suffix = ".png" if number % 2 else ".jpg"
                image_size = size if number % 3 else (size[0] * 2, size[1] * 2)
                key = f"Data/{split}/{subject}/{'live' if live else 'spoof'}/{subject}{number:03d}{suffix}"
                path = root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(face_image(rng, image_size, spoof_type)).save(path, quality=95)
                path.with_name(path.stem + "_BB.txt").write_text(" ".join(map(str, BOX_224)) + " 0.99\n")
                values = [int(v) for v in rng.integers(0, 2, 40)] + [spoof_type, light, place, int(not live)]
                labels[split][key] = values
    metas = root / "metas" / "intra_test"
    metas.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        (metas / f"{split}_label.json").write_text(json.dumps(labels[split]))
    return labels
