"""Base for datasets read from files: records -> subset -> identity-disjoint split -> decoded once into a lossless
cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from datamodules.atomic import is_complete
from datamodules.base import IdentityDataModule
from datamodules.cache import CACHE_VERSION, read_split_cache, write_split_cache
from datamodules.faces.loader import check_detection_rate
from datamodules.images import BadImage, check_image_size, read_each, read_image
from datamodules.progress import progress
from datamodules.records import ImageRecord, assign_splits, take_subset
from datamodules.split import IdentitySplit
from metric.errors import ConfigError


class FileDataModule(IdentityDataModule):
    """Subclasses implement `scan()` (the dataset's layout); this class does the rest, the same for every dataset."""

    dataset_name = "files"
    root_key = "datamodule.root"  # how the config names `root`, in messages

    def __init__(
        self,
        root: str,
        image_size: tuple[int, int] = (64, 64),
        channels: int = 3,
        split: str = "identity",
        split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        split_counts: tuple[int, int, int] | None = None,
        max_identities: int | None = None,
        max_images_per_identity: int | None = None,
        fraction: float | None = None,
        cache_dir: str | None = None,
        bad_files_report: str | None = None,
        **batching,
    ):
        super().__init__(**batching)
        if channels not in (1, 3):
            raise ConfigError(f"datamodule.channels={channels} must be 1 (grey) or 3 (RGB).")
        self.root = Path(root)
        self.image_size = check_image_size(image_size)
        self.image_channels = channels
        self.split_mode = split
        self.split_fractions = list(split_fractions)
        self.split_counts = list(split_counts) if split_counts is not None else None
        self.subset = {
            "max_identities": max_identities,
            "max_images_per_identity": max_images_per_identity,
            "fraction": fraction,
        }
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.bad_files_report = Path(bad_files_report) if bad_files_report else None
        self.bad_files: list[str] = []

    # subclasses -----------------------------------------------------------------------------
    def scan(self) -> list[ImageRecord]:
        """Every image the dataset's annotations describe; stop with the expected tree when the layout is wrong."""
        raise NotImplementedError

    def preprocess_settings(self) -> dict:
        """What changes the decoded pixels; part of the cache key. Subclasses add their options."""
        return {
            "image_size": list(self.image_size),
            "channels": self.image_channels,
            "face": self.face.spec(),
            "on_miss": self.face.on_miss,
        }

    def decode(self, record: ImageRecord) -> np.ndarray:
        """The image as face=none reads it: cropped by the dataset's box, when it has one, and resized."""
        return read_image(record.path, self.image_channels, self.image_size, box=record.box)

    def decode_records(self, split: str, records: list[ImageRecord]) -> list[np.ndarray | BadImage]:
        """Each record's pixels, or the BadImage that keeps it out: through the face front end when one runs."""
        if self.face.active:
            return self.detect_faces(
                split, [r.path for r in records], self.image_channels, self.image_size, self.cache_dir
            )
        return read_each(progress(records, desc=f"{split}: decode {self.dataset_name}"), self.decode)

    # shared ----------------------------------------------------------------------------------
    def load_splits(self) -> dict[str, IdentitySplit]:
        records = take_subset(self.scan(), seed=self.seed, **self.subset)
        assignment = assign_splits(records, self.split_mode, self.split_fractions, self.split_counts, self.seed)
        return self.load_assignment(assignment)

    def load_assignment(self, assignment: dict[str, list[ImageRecord]]) -> dict[str, IdentitySplit]:
        """Decoded splits for these records: from the cache when it holds them, else decoded and cached."""
        cache = self.cache_path(assignment)
        if cache is not None and is_complete(cache):
            splits, self.bad_files, self.face_log, notes = read_split_cache(cache)
            self.notes.update(notes)
            self.check_cached_detection_rates()
        else:
            splits = self.decode_splits(assignment)
            if cache is not None:
                write_split_cache(cache, splits, self.bad_files, self.face_log, self.notes)
        self.report_bad_files()
        return splits

    def decode_splits(self, assignment: dict[str, list[ImageRecord]]) -> dict[str, IdentitySplit]:
        names = sorted({r.identity for records in assignment.values() for r in records})
        label_of = {name: i for i, name in enumerate(names)}
        self.bad_files, self.face_log = [], []
        splits = {}
        for split, records in assignment.items():
            if not records:  # none asked for (e.g. split_fractions=[0,0,1], a test-only set): checked where it matters
                splits[split] = IdentitySplit(
                    np.zeros((0, *self.image_size, self.image_channels), np.uint8), np.zeros(0, np.int64), [], []
                )
                continue
            images, labels, sources, factors = [], [], [], []
            for record, decoded in zip(records, self.decode_records(split, records)):
                if isinstance(decoded, BadImage):
                    self.bad_files.append(str(decoded))
                    continue
                images.append(decoded)
                labels.append(label_of[record.identity])
                sources.append(str(record.path))
                factors.append(dict(record.factors))
            if not images:
                raise ConfigError(
                    f"the {split} split of {self.root_key}={str(self.root)!r} has no readable image "
                    f"({len(records)} listed). Check the root, the filters and the split settings."
                )
            splits[split] = IdentitySplit(np.stack(images), np.array(labels, dtype=np.int64), sources, factors)
        return splits

    def check_cached_detection_rates(self) -> None:
        """The detection-rate check of a cached split, under today's face.min_detection_rate."""
        for split in {entry["split"] for entry in self.face_log}:
            check_detection_rate(split, [e for e in self.face_log if e["split"] == split], self.face)

    def cache_path(self, assignment: dict[str, list[ImageRecord]]) -> Path | None:
        """<cache_dir>/<dataset>-<hash of the files (path, size, mtime), their split and the preprocessing>."""
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256()
        digest.update(
            json.dumps(
                {"v": CACHE_VERSION, "dataset": self.dataset_name, **self.preprocess_settings()}, sort_keys=True
            ).encode()
        )
        for split, records in assignment.items():
            for record in records:
                try:
                    stat = record.path.stat()
                    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
                except OSError:
                    stamp = "missing"
                factors = json.dumps(record.factors, sort_keys=True)  # a rendered attack differs from its live source
                digest.update(
                    f"{split}|{record.path}|{record.identity}|{stamp}|{record.box}|{record.landmarks}|"
                    f"{factors}\n".encode()
                )
        return self.cache_dir / f"{self.dataset_name}-{digest.hexdigest()[:16]}"

    def report_bad_files(self) -> None:
        self.notes["bad_files"] = len(self.bad_files)
        if not self.bad_files:
            return
        faceless = sum(": no face" in line or ": too small" in line for line in self.bad_files)
        message = (
            f"skipped {len(self.bad_files)} image file(s): {len(self.bad_files) - faceless} unreadable or "
            f"missing, {faceless} without a face"
        )
        if self.bad_files_report is not None:
            self.bad_files_report.parent.mkdir(parents=True, exist_ok=True)
            self.bad_files_report.write_text("\n".join(self.bad_files) + "\n")
            message += f"; their paths are in {self.bad_files_report}"
        print(message)
