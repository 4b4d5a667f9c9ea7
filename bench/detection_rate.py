"""The face front end's detection rate over every photo of a tree, with faces.png (misses first).

python bench/detection_rate.py ../shared/data/lfw/lfw-deepfunneled --out /tmp/lfw_faces [--front-end mtcnn]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from datamodules.faces.dlib_faces import DlibFaces
from datamodules.faces.loader import FaceLoader
from datamodules.faces.mtcnn_faces import MtcnnFaces
from datamodules.images import IMAGE_SUFFIXES
from metric.report.plots import plot_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="a folder of photos (searched recursively)")
    parser.add_argument("--out", required=True, help="where detection_rate.json and faces.png go")
    parser.add_argument("--cache", help="the crop cache folder (default: <out>/cache)")
    parser.add_argument("--front-end", choices=("dlib", "mtcnn"), default="dlib")
    parser.add_argument("--upsample", type=int, default=1, help="dlib: times the photo is doubled (faces from 40 px)")
    parser.add_argument("--detector", choices=("hog", "cnn"), default="hog", help="dlib's detector")
    parser.add_argument("--min-face", type=int, default=40, help="mtcnn: the smallest face searched for, in pixels")
    parser.add_argument("--select", choices=("largest", "centre"), default="largest")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(p for p in Path(args.root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    front_end = (
        DlibFaces(detector=args.detector, upsample=args.upsample, select=args.select)
        if args.front_end == "dlib"
        else MtcnnFaces(min_face=args.min_face, select=args.select)
    )
    loader = FaceLoader(front_end, 3, (args.size, args.size), args.cache or out / "cache")
    start = time.perf_counter()
    crops = loader.load_many(paths, desc="detect")
    seconds = time.perf_counter() - start
    readable = [(p, c) for p, c in zip(paths, crops) if not isinstance(c, Exception)]
    found = sum(c.found for _, c in readable)
    several = sum(c.faces > 1 for _, c in readable)
    result = {
        "photos": len(paths),
        "unreadable": len(paths) - len(readable),
        "faces_found": found,
        "detection_rate": found / max(len(readable), 1),
        "several_faces": several,
        "front_end": front_end.spec(),
        "seconds": round(seconds, 1),
    }
    (out / "detection_rate.json").write_text(json.dumps(result, indent=2))
    plot_faces(
        [{"source": str(p), **c.record()} for p, c in readable],
        {str(p): c.image for p, c in readable},
        out / "faces.png",
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
