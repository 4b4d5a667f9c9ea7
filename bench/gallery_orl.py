"""One-shot enrollment on real faces (ORL): rank-1 identification, then the open-set false-accept rate.

With a checkpoint trained on s1-s30 (see docs/gallery.md for the command):
1. enroll s31-s40 from their first image each, identify their other nine images: rank-1 accuracy;
2. enroll only s31-s35, probe with every image of s36-s40: the share accepted as someone (false accepts)
   at the checkpoint's stored threshold.
Run: python bench/gallery_orl.py --ckpt <best checkpoint> [--faces ../shared/data/att_faces]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from metric.deploy.gallery import Gallery


def images(faces: Path, person: str) -> list[Path]:
    return sorted((faces / person).glob("*.pgm"), key=lambda p: int(p.stem))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--faces", default="../shared/data/att_faces")
    args = parser.parse_args()
    faces = Path(args.faces)
    people = [f"s{i}" for i in range(31, 41)]
    with tempfile.TemporaryDirectory() as tmp:
        closed = Gallery.open(Path(tmp) / "closed.db", ckpt=args.ckpt)
        for person in people:
            closed.enroll(person, images(faces, person)[:1])
        hits = total = accepted = 0
        for person in people:
            for probe in images(faces, person)[1:]:
                matches, known = closed.identify(probe, top_k=5)[:2]
                hits += matches[0].identity == person
                accepted += known and matches[0].identity == person
                total += 1
        print(
            f"closed set: {len(people)} identities enrolled from 1 image, {total} probes: "
            f"rank-1 {hits / total:.1%}; accepted as the right person at the stored threshold "
            f"{closed.verifier.threshold:.4f}: {accepted / total:.1%}"
        )
        open_set = Gallery.open(Path(tmp) / "open.db", ckpt=args.ckpt)
        for person in people[:5]:
            open_set.enroll(person, images(faces, person)[:1])
        probes = [p for person in people[5:] for p in images(faces, person)]
        false_accepts = sum(open_set.identify(p, top_k=1)[1] for p in probes)
        print(
            f"open set: s31-s35 enrolled, {len(probes)} probes of s36-s40: false-accept rate "
            f"{false_accepts / len(probes):.1%} ({false_accepts}/{len(probes)}) at the stored threshold"
        )


if __name__ == "__main__":
    main()
