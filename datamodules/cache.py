"""The lossless preprocessing cache of decoded splits: uint8 .npy arrays in a folder renamed into place, manifest
last."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from datamodules.atomic import MANIFEST, atomic_directory
from datamodules.split import IdentitySplit

CACHE_VERSION = 3  # 2: the face front end's detections and rates are kept; 3: photos upright by EXIF


def write_split_cache(
    path: Path, splits: dict[str, IdentitySplit], bad_files: list[str], face_log: list[dict], notes: dict
) -> None:
    """uint8 arrays as .npy (lossless) in a temporary folder renamed into place; the manifest is written last."""
    with atomic_directory(path) as tmp:
        for name, split in splits.items():
            np.save(tmp / f"{name}_images.npy", split.images)
            np.save(tmp / f"{name}_labels.npy", split.labels)
        index = {name: {"sources": s.sources, "factors": s.factors} for name, s in splits.items()}
        (tmp / "index.json").write_text(
            json.dumps({"splits": index, "bad_files": bad_files, "face_log": face_log, "notes": notes})
        )
        (tmp / MANIFEST).write_text(json.dumps({"version": CACHE_VERSION, "splits": list(splits)}))


def read_split_cache(path: Path) -> tuple[dict[str, IdentitySplit], list[str], list[dict], dict]:
    """The splits, the bad-file list, the face detections and the data notes a complete cache folder holds."""
    index = json.loads((path / "index.json").read_text())
    splits = {
        name: IdentitySplit(
            np.load(path / f"{name}_images.npy"),
            np.load(path / f"{name}_labels.npy"),
            entry["sources"],
            entry["factors"],
        )
        for name, entry in index["splits"].items()
    }
    return splits, index["bad_files"], index["face_log"], index["notes"]
