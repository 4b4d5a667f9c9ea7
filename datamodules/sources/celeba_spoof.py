"""CelebA-Spoof in its official layout: Data/<split>/<subject>/<live|spoof>/<image> with <image>_BB.txt,
metas/intra_test labels."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np

from datamodules.file_datamodule import FileDataModule
from datamodules.images import as_array, open_image, resize
from datamodules.liveness import ENVIRONMENTS, ILLUMINATIONS, SPOOF_TYPES, LivenessData
from datamodules.records import ImageRecord, natural_key, take_subset
from datamodules.split import IdentitySplit
from metric.errors import ConfigError

EXPECTED_TREE = """<root>/
  Data/train/<subject id>/live/<image>.jpg|png     with <image>_BB.txt beside each image: 'x y w h score'
  Data/train/<subject id>/spoof/<image>.jpg|png
  Data/test/<subject id>/live|spoof/...
  metas/intra_test/train_label.json, test_label.json
      {"Data/train/<subject>/<live|spoof>/<image>.jpg": [44 integers], ...}
"""
LABEL_FILES = {"train": "metas/intra_test/train_label.json", "test": "metas/intra_test/test_label.json"}
LABEL_LENGTH = 44
# the box file's coordinates refer to the image resized to 224 x 224, whatever its real size (the dataset's own
# reader, intra_dataset_code/client.py: x * real_w / 224, y * real_h / 224)
BOX_SCALE = 224.0
SUFFIXES = (".jpg", ".png")
VAL_STREAM = 3  # the seeded stream that draws CelebA-Spoof's validation subjects


def read_box(image: Path) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) at the 224 x 224 reference scale from '<image>_BB.txt' ('x y w h score'); None if unreadable."""
    try:
        fields = image.with_name(image.stem + "_BB.txt").read_text().split()
        x, y, w, h = (float(v) for v in fields[:4])
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if len(fields) < 4 or w <= 0 or h <= 0 or not np.isfinite([x, y, w, h]).all():
        return None
    return x, y, x + w, y + h


def crop_box(width: int, height: int, box: tuple[float, float, float, float]) -> tuple[int, int, int, int] | None:
    """A 224-scale box in this image's pixels, clipped to the image; None when nothing of it lies inside."""
    sx, sy = width / BOX_SCALE, height / BOX_SCALE
    x0, y0 = max(0, int(box[0] * sx)), max(0, int(box[1] * sy))
    x1, y1 = min(width, int(box[2] * sx)), min(height, int(box[3] * sy))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def check_label(values, file: Path, key: str) -> list[int]:
    ranges = {40: SPOOF_TYPES, 41: ILLUMINATIONS, 42: ENVIRONMENTS, 43: {0: "live", 1: "spoof"}}
    if not isinstance(values, list) or len(values) != LABEL_LENGTH or not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{file}: the labels of {key!r} must be a list of {LABEL_LENGTH} integers; got {values!r}.")
    for index, allowed in ranges.items():
        if values[index] not in allowed:
            raise ConfigError(f"{file}: {key!r} has {values[index]} at index {index}; it takes {sorted(allowed)}.")
    return values


class CelebASpoofDataModule(LivenessData, FileDataModule):
    """Train and test subjects from the official intra-test labels (checked disjoint); validation subjects carved
    from train, seeded. The labels JSON, not the folder name, says live or spoof."""

    dataset_name = "celeba_spoof"

    def __init__(
        self,
        val_subjects: float | int = 0.1,
        max_subjects: int | None = None,
        max_images_per_subject: int | None = None,
        **kwargs,
    ):
        super().__init__(max_identities=max_subjects, max_images_per_identity=max_images_per_subject, **kwargs)
        self.val_subjects = self.check_val_subjects(val_subjects)

    def require(self, name: str) -> Path:
        path = self.root / name
        if not path.exists():
            raise ConfigError(
                f"CelebA-Spoof: {path} is missing; datamodule.root={str(self.root)!r} is not in the "
                f"CelebA-Spoof layout. Expected:\n{EXPECTED_TREE}"
            )
        return path

    def image_path(self, key: str) -> Path:
        path = self.root / key
        if path.suffix.lower() in SUFFIXES:
            return path
        return next(
            (path.with_name(path.name + s) for s in SUFFIXES if path.with_name(path.name + s).exists()),
            path.with_name(path.name + SUFFIXES[0]),
        )

    def scan(self) -> list[ImageRecord]:
        self.require("Data")
        records, disagree = [], 0
        for partition, name in LABEL_FILES.items():
            file = self.require(name)
            try:
                labels = json.loads(file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ConfigError(f"{file} is not valid JSON ({error}).") from None
            if not isinstance(labels, dict):
                raise ConfigError(f"{file} must hold one object of '<image path>': [44 integers].")
            for key, values in labels.items():
                parts = PurePosixPath(key).parts
                if len(parts) != 5 or parts[0] != "Data" or parts[3] not in ("live", "spoof"):
                    raise ConfigError(f"{file}: key {key!r} is not 'Data/<split>/<subject>/<live|spoof>/<image>'.")
                values = check_label(values, file, key)
                disagree += (parts[3] == "spoof") != bool(values[43])
                records.append(
                    ImageRecord(
                        path=self.image_path(key),
                        identity=parts[2],
                        partition=partition,
                        factors={
                            "spoof": values[43],
                            "spoof_type": values[40],
                            "illumination": values[41],
                            "environment": values[42],
                        },
                    )
                )
        if not records:
            raise ConfigError(f"CelebA-Spoof: {self.root / 'metas/intra_test'} lists no image.")
        self.notes["label_folder_disagreements"] = disagree
        if disagree:
            print(
                f"CelebA-Spoof: {disagree} image(s) sit in a live/spoof folder that their labels contradict; "
                "the labels JSON is followed."
            )
        return records

    def load_splits(self) -> dict[str, IdentitySplit]:
        records = take_subset(self.scan(), seed=self.seed, **self.subset)
        found = [r.path.exists() for r in records]  # one look per file: missing ones become bad files when decoded
        if not any(found):
            raise ConfigError(
                f"CelebA-Spoof: none of the {len(records)} images the labels list exists under "
                f"{self.root}; datamodule.root must be the folder holding Data/ and metas/."
            )
        self.notes["missing_images"] = found.count(False)
        records = [self.with_box(r) if ok else r for r, ok in zip(records, found)]
        unboxed = [str(r.path) for r, ok in zip(records, found) if ok and r.box is None]
        self.notes["unreadable_box_files"] = len(unboxed)
        if unboxed:
            print(
                f"CelebA-Spoof: {len(unboxed)} box file(s) missing or unreadable (first: {unboxed[0]}); "
                "those images are used whole."
            )
        return self.load_assignment(self.filter_conditions(self.carve_validation(self.official(records), VAL_STREAM)))

    def official(self, records: list[ImageRecord]) -> dict[str, list[ImageRecord]]:
        """The intra-test train and test records, after checking that no subject is in both."""
        train = {r.identity for r in records if r.partition == "train"}
        shared = sorted(train & {r.identity for r in records if r.partition == "test"}, key=natural_key)
        if shared:
            raise ConfigError(
                f"CelebA-Spoof: {len(shared)} subject(s) appear in both {LABEL_FILES['train']} and "
                f"{LABEL_FILES['test']} (first: {', '.join(shared[:5])}); errors must be measured on "
                "unseen subjects. Check that the labels files are the official ones."
            )
        return {split: [r for r in records if r.partition == split] for split in ("train", "val", "test")}

    @staticmethod
    def with_box(record: ImageRecord) -> ImageRecord:
        """The record with its face box, or as it was when the box file is missing or unreadable."""
        box = read_box(record.path)
        return (
            record if box is None else ImageRecord(record.path, record.identity, record.partition, record.factors, box)
        )

    def preprocess_settings(self) -> dict:
        return {**super().preprocess_settings(), "box_scale": BOX_SCALE}

    def decode(self, record: ImageRecord) -> np.ndarray:
        """Cropped to the face box (scaled from 224 x 224 to the image's size), else whole; then resized."""
        image = open_image(record.path, self.image_channels)
        crop = crop_box(image.width, image.height, record.box) if record.box is not None else None
        if crop is not None:
            image = image.crop(crop)
        return as_array(resize(image, self.image_size))
