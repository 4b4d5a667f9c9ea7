"""Landmarks of face=dlib and face=mtcnn on ORL faces pasted into larger photos at known places, scales (1-3x) and
rotations (up to 20 degrees), side by side on the same photos.

ORL has no landmark annotations, so the error is one of consistency: the landmarks found in the pasted photo, mapped
back through the known placement, against those found on the original 92 x 112 crop, in original pixels. Eyes are
both front ends' eye centres (dlib: the mean of each eye's two corners); the nose is dlib's nose base and MTCNN's
nose tip; mouth corners are MTCNN's only. Also the detection rate on both.
Run: python bench/landmarks_pasted.py [--photos ../shared/data/att_faces] [--images 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from datamodules.images import IMAGE_SUFFIXES, open_image
from datamodules.sources.pasted import paste

ORL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "att_faces"
PARTS = {"eyes": [0, 1], "nose": [2], "mouth": [3, 4]}


def front_ends() -> dict:
    from datamodules.faces.dlib_faces import DlibFaces
    from datamodules.faces.mtcnn_faces import MtcnnFaces

    return {"dlib": DlibFaces(upsample=1), "mtcnn": MtcnnFaces(min_face=40)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(ORL))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="a JSON file for the figures")
    args = parser.parse_args()
    sources = sorted(p for p in Path(args.photos).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    sources = sources[:: max(1, len(sources) // args.images)][: args.images]
    rng = np.random.default_rng(args.seed)
    placed = [(source, *paste(open_image(source, 3), rng)) for source in sources]
    results = {}
    for name, front_end in front_ends().items():
        errors = {part: [] for part in PARTS}
        found_pasted = found_original = 0
        for source, photo, placement in placed:
            original = front_end.crop(open_image(source, 3), (112, 112))
            pasted = front_end.crop(photo, (112, 112))
            found_original += original.found
            found_pasted += pasted.found
            if not (original.found and pasted.found):
                continue
            affine = np.array(placement["affine"])
            back = (np.array(pasted.landmarks) - affine[:, 2]) @ np.linalg.inv(affine[:, :2]).T
            distance = np.linalg.norm(back - np.array(original.landmarks), axis=1)
            for part, rows in PARTS.items():
                if max(rows) < len(distance):
                    errors[part].extend(distance[rows].tolist())
        results[name] = {
            "photos": len(placed),
            "found_pasted": found_pasted,
            "found_original": found_original,
            **{f"{part}_median_px": round(float(np.median(e)), 2) for part, e in errors.items() if e},
            **{f"{part}_p90_px": round(float(np.percentile(e, 90)), 2) for part, e in errors.items() if e},
        }
        print(f"{name}: " + json.dumps(results[name]))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
