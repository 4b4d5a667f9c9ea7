"""Face crops pasted into larger photos at known placements: controlled full-frame photos to test a face front end.

`paste_tree(src, out)` writes `<out>/<identity>/<image>.png` for every `<src>/<identity>/<image>` (a folder
datamodule reads it like the original) and `<out>/placements.json`: each photo's scale, rotation and the affine
map from the original's pixels to the photo's. The background is smooth random colour, different per photo.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.atomic import MANIFEST, atomic_directory
from datamodules.images import IMAGE_SUFFIXES, open_image
from datamodules.records import natural_key


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """Smooth colour noise: a few octaves of upsampled random grids."""
    canvas = np.zeros((size, size, 3))
    for cells, weight in ((2, 0.5), (6, 0.3), (24, 0.2)):
        grid = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
        canvas += weight * np.asarray(Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC), float)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def paste(
    face: Image.Image,
    rng: np.random.Generator,
    canvas: int = 480,
    scale: tuple[float, float] = (1.0, 3.0),
    max_rotation: float = 20.0,
) -> tuple[Image.Image, dict]:
    """The face (RGB) scaled, rotated and pasted at a random place in a canvas x canvas photo; and its placement:
    scale, rotation (degrees, counter-clockwise), and `affine`, the 2 x 3 map from face pixels to photo pixels."""
    s, angle = float(rng.uniform(*scale)), float(rng.uniform(-max_rotation, max_rotation))
    scaled = face.resize((round(face.width * s), round(face.height * s)), Image.Resampling.BICUBIC)
    mask = Image.new("L", scaled.size, 255)
    rotated = scaled.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    rotated_mask = mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    if max(rotated.size) > canvas:
        raise ValueError(f"a face of {face.size} at scale {s:.2f} does not fit a {canvas}-pixel canvas")
    x0 = int(rng.integers(0, canvas - rotated.width + 1))
    y0 = int(rng.integers(0, canvas - rotated.height + 1))
    photo = background(rng, canvas)
    photo.paste(rotated, (x0, y0), rotated_mask)
    # face pixel p -> scaled s*p -> rotated about the scaled centre, shifted into the expanded frame -> + (x0, y0)
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])  # image y points down
    centre_in = np.array(scaled.size) / 2
    centre_out = np.array(rotated.size) / 2 + np.array([x0, y0])
    linear = s * rotation
    affine = np.hstack([linear, (centre_out - rotation @ centre_in)[:, None]])
    return photo, {"scale": s, "rotation": angle, "affine": affine.round(4).tolist()}


def paste_tree(
    src: str | Path,
    out: str | Path,
    seed: int = 0,
    canvas: int = 480,
    scale: tuple[float, float] = (1.0, 3.0),
    max_rotation: float = 20.0,
    max_images_per_identity: int | None = None,
) -> dict:
    """Every image of `src`'s identity folders, pasted (seeded), written as a folder tree with placements.json."""
    src, out = Path(src), Path(out)
    rng = np.random.default_rng(seed)
    placements = {}
    with atomic_directory(out) as tmp:
        for folder in sorted((p for p in src.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
            images = sorted(
                (f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), key=lambda f: natural_key(f.name)
            )[:max_images_per_identity]
            (tmp / folder.name).mkdir()
            for image in images:
                photo, placement = paste(open_image(image, 3), rng, canvas, scale, max_rotation)
                name = f"{folder.name}/{image.stem}.png"
                photo.save(tmp / name, format="PNG")
                placements[name] = {"source": str(image), **placement}
        (tmp / "placements.json").write_text(json.dumps(placements, indent=1))
        (tmp / MANIFEST).write_text(json.dumps({"source": str(src), "seed": seed, "images": len(placements)}))
    return placements
