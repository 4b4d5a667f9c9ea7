"""Write a face set pasted into larger photos (datamodules.sources.pasted), for the face front end's evidence.

python bench/paste_faces.py ../shared/data/att_faces /tmp/orl_pasted --seed 0
"""

from __future__ import annotations

import argparse

from datamodules.sources.pasted import paste_tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="a tree <identity>/<image> of face crops")
    parser.add_argument("out", help="the folder to write (a tree like src, plus placements.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--canvas", type=int, default=480, help="photo side in pixels")
    parser.add_argument("--max-rotation", type=float, default=20.0, help="degrees, either way")
    args = parser.parse_args()
    placements = paste_tree(args.src, args.out, seed=args.seed, canvas=args.canvas, max_rotation=args.max_rotation)
    print(f"wrote {len(placements)} photos to {args.out}")


if __name__ == "__main__":
    main()
