"""Where dlib.get_face_chip (size 150, padding 0.25) puts the eye centres and the nose base: the `face.template=dlib`
target points (datamodules/faces/dlib_faces.py TEMPLATES), measured as a mean over photos.

Each photo's chip transform is read exactly by warping a coordinate image (pixel value = its own x, y) with
dlib.get_face_chip and fitting the similarity map from original to chip pixels. With --pairs, the first N pairs of
an LFW pairs file are then scored by dlib's face-recognition ResNet (distance < 0.6, dlib's threshold) on our
chips (face=dlib face.template=dlib face.margin=0) and on dlib's own.
    python bench/dlib_chip_template.py [--photos DIR] [--count 200] [--pairs pairs.txt --pairs-count 600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.faces.dlib_faces import LANDMARKS, TEMPLATES, DlibFaces, import_dlib, models_dir, three_points
from datamodules.images import IMAGE_SUFFIXES, open_image, similarity_transform

LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw" / "lfw-deepfunneled"
SIZE, PADDING = 150, 0.25


def chip_points(dlib, image: np.ndarray, shape) -> np.ndarray:
    """The 3 points (eye centres, nose base) in the pixels of the chip dlib cuts for this face."""
    height, width = image.shape[:2]
    if max(height, width) > 256:
        raise SystemExit("photos up to 256 pixels a side: a coordinate is kept in one 8-bit channel")
    yy, xx = np.mgrid[0:height, 0:width]
    coordinates = np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8)
    chip = dlib.get_face_chip(coordinates, shape, size=SIZE, padding=PADDING).astype(np.float64)
    cy, cx = np.mgrid[0:SIZE, 0:SIZE]
    inside = (chip[..., 0] > 2) & (chip[..., 0] < width - 3) & (chip[..., 1] > 2) & (chip[..., 1] < height - 3)
    forward = similarity_transform(
        np.stack([chip[..., 0][inside], chip[..., 1][inside]], 1),
        np.stack([cx[inside], cy[inside]], 1).astype(np.float64),
    )
    return three_points(shape) @ forward[:, :2].T + forward[:, 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(LFW))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--pairs", help="an LFW pairs.txt whose images lie under --photos")
    parser.add_argument("--pairs-count", type=int, default=600)
    args = parser.parse_args()
    dlib = import_dlib()
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(models_dir() / LANDMARKS))
    paths = sorted(p for p in Path(args.photos).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    step = max(1, len(paths) // args.count)
    points = []
    for path in paths[::step][: args.count]:
        image = np.asarray(open_image(path, 3))
        faces = detector(image, 1)
        if faces:
            points.append(chip_points(dlib, image, predictor(image, max(faces, key=lambda r: r.area()))))
    points = np.array(points) / SIZE
    print(
        f"{len(points)} faces; mean (fractions of the chip): {points.mean(0).round(4).tolist()}; "
        f"spread (pixels): {(points.std(0) * SIZE).round(2).tolist()}"
    )
    print(f"face.template=dlib holds: {TEMPLATES['dlib'].round(4).tolist()}")
    if args.pairs:
        pair_accuracy(dlib, detector, predictor, Path(args.pairs), Path(args.photos), args.pairs_count)


def pair_accuracy(dlib, detector, predictor, pairs_file: Path, root: Path, count: int) -> None:
    from datamodules.sources.lfw import read_pairs_file

    recogniser = dlib.face_recognition_model_v1(str(models_dir() / "dlib_face_recognition_resnet_model_v1.dat"))
    pairs = read_pairs_file(pairs_file, root)
    first, second, genuine = pairs.first[:count], pairs.second[:count], np.asarray(pairs.genuine[:count])
    ours_front_end = DlibFaces(template="dlib", margin=0.0)

    def dlib_chip(image: np.ndarray):
        faces = detector(image, 1)
        return (
            dlib.get_face_chip(image, predictor(image, max(faces, key=lambda r: r.area())), size=SIZE, padding=PADDING)
            if faces
            else None
        )

    def ours_chip(image: np.ndarray):
        return ours_front_end.crop(Image.fromarray(image), (SIZE, SIZE)).image

    for name, chip_of in (("ours (face.template=dlib)", ours_chip), ("dlib.get_face_chip", dlib_chip)):
        descriptors = {}
        for path in sorted(set(first) | set(second)):
            image = np.asarray(open_image(path, 3))
            chip = chip_of(image)
            chip = chip if chip is not None else np.asarray(Image.fromarray(image).resize((SIZE, SIZE)))
            descriptors[path] = np.array(recogniser.compute_face_descriptor(np.ascontiguousarray(chip)))
        distance = np.array([np.linalg.norm(descriptors[a] - descriptors[b]) for a, b in zip(first, second)])
        print(f"{name}: accuracy {((distance < 0.6) == genuine).mean():.4f} on the first {len(genuine)} pairs")


if __name__ == "__main__":
    main()
