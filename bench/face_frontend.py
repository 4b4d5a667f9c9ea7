"""The face front end (detect + 5 landmarks + align) against dlib's own face_recognition-style pipeline, and what
the crop cache saves, side by side on the same photos.

Times in alternating rounds, on the same N photos (LFW by default: 250x250 JPEGs, one face near the centre):
  ours      datamodules.faces.dlib_faces.DlibFaces.crop (HOG, upsample 1, 5 landmarks, similarity warp)
  dlib      the pipeline face_recognition runs before its encoder: HOG detector (upsample 1), the 5-point
            shape predictor on the largest face, dlib.get_face_chip (padding 0.25)
  cached    FaceLoader reading the same crops back from its PNG cache
Then a folder datamodule is set up twice with face=dlib (the second from its split cache) and iterated for two
epochs, counting detector calls.
Run: python bench/face_frontend.py [--photos DIR] [--images 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from datamodules.faces.dlib_faces import LANDMARKS, DlibFaces, import_dlib, models_dir
from datamodules.faces.loader import FaceLoader
from datamodules.images import IMAGE_SUFFIXES, open_image
from datamodules.sources.folder import FolderDataModule

LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw" / "lfw-deepfunneled"


# Shared with bench/face_pipeline.py (which imports them from this script): the photos, dlib's own detection steps,
# the rate measure and the command line both face benches take.


def photos(root: Path, count: int, spread: bool = False) -> list[Path]:
    """The first `count` photos under root, or with spread, `count` photos picked evenly through them (over the
    people of a sorted tree)."""
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise SystemExit(f"no photos under {root}")
    return found[:: max(1, len(found) // count)][:count] if spread else found[:count]


def largest_face_landmarks():
    """dlib, and path -> (the RGB photo, the 5 landmarks of its largest face), or None without a face: the steps
    face_recognition runs before it cuts a chip or encodes (HOG detector at upsample 1, the 5-point predictor)."""
    dlib = import_dlib()
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models_dir() / LANDMARKS))

    def find(path: Path):
        image = np.asarray(open_image(path, 3))
        faces = detector(image, 1)
        if not faces:
            return None
        largest = max(faces, key=lambda r: r.area())
        return image, predictor(image, largest)

    return dlib, find


def per_second(run, paths: list[Path]) -> tuple[float, int]:
    """Photos per second of run over paths, and how many it found a face in (run returns None without one)."""
    start = time.perf_counter()
    found = sum(run(p) is not None for p in paths)
    return len(paths) / (time.perf_counter() - start), found


def photo_parser(description: str, images: int) -> argparse.ArgumentParser:
    """The arguments of both face benches: --photos (LFW by default), --images (how many), --rounds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--photos", default=str(LFW))
    parser.add_argument("--images", type=int, default=images)
    parser.add_argument("--rounds", type=int, default=3)
    return parser


def dlib_pipeline(size: int):
    """face_recognition's steps with dlib alone: load RGB, detect, 5 landmarks, get_face_chip."""
    dlib, find = largest_face_landmarks()

    def run(path: Path):
        found = find(path)
        return None if found is None else dlib.get_face_chip(*found, size=size, padding=0.25)

    return run


def main() -> None:
    parser = photo_parser(__doc__.splitlines()[0], images=200)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    paths = photos(Path(args.photos), args.images)
    size = (args.size, args.size)
    front_end = DlibFaces()
    ours = lambda p: front_end.crop(open_image(p, 3), size).image  # noqa: E731
    theirs = dlib_pipeline(args.size)
    rates: dict[str, list[float]] = {"ours": [], "dlib": [], "cached": []}
    with tempfile.TemporaryDirectory() as tmp:
        loader = FaceLoader(front_end, 3, size, tmp)
        cold, _ = per_second(lambda p: loader.load(p).image, paths)  # fills the cache
        for r in range(args.rounds):
            (rate, found_ours), (rate_dlib, found_dlib) = per_second(ours, paths), per_second(theirs, paths)
            rates["ours"].append(rate)
            rates["dlib"].append(rate_dlib)
            rates["cached"].append(per_second(lambda p: loader.load(p).image, paths)[0])
            print(
                f"round {r + 1}: ours {rate:.1f} img/s ({found_ours} faces), dlib {rate_dlib:.1f} img/s "
                f"({found_dlib} faces), cached {rates['cached'][-1]:.0f} img/s"
            )
    o, d, c = (float(np.median(rates[k])) for k in ("ours", "dlib", "cached"))
    print(
        f"median: ours {o:.1f} img/s, dlib's pipeline {d:.1f} img/s, ratio ours/dlib {o / d:.2f}x; "
        f"cache: first pass {cold:.1f} img/s, cached {c:.0f} img/s ({c / o:.0f}x) - {len(paths)} photos, "
        f"{args.size}x{args.size}"
    )
    epochs(paths, size)


def epochs(paths: list[Path], size: tuple[int, int]) -> None:
    """A datamodule over the photos (each its own identity: only the detector calls count here), set up twice,
    then two epochs."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        for number, path in enumerate(paths):
            (root / f"p{number:05d}").mkdir(parents=True)
            (root / f"p{number:05d}" / path.name).symlink_to(path.resolve())
        calls = {"n": 0}
        front_end = DlibFaces(on_miss="whole")
        crop = front_end.crop

        def counted(*a, **k):
            calls["n"] += 1
            return crop(*a, **k)

        front_end.crop = counted
        timings, setup_calls = [], []
        for _ in range(2):
            dm = FolderDataModule(
                root=str(root),
                image_size=size,
                cache_dir=str(Path(tmp) / "cache"),
                face=front_end,
                split_fractions=[0.6, 0.2, 0.2],
                batch_identities=2,
                batch_images_per_identity=1,
            )
            start = time.perf_counter()
            dm.setup("test")
            timings.append(time.perf_counter() - start)
            setup_calls.append(calls["n"] - sum(setup_calls))
        before = calls["n"]
        for _ in range(2):  # two passes over every image the model would see
            for split in ("train", "val", "test"):
                for _batch in dm.eval_dataloader(split):
                    pass
        print(
            f"datamodule setup: first {timings[0]:.2f} s ({setup_calls[0]} detector calls), second {timings[1]:.3f} s "
            f"({setup_calls[1]} detector calls: the split cache); two epochs after setup: {calls['n'] - before} "
            "detector calls"
        )


if __name__ == "__main__":
    main()
