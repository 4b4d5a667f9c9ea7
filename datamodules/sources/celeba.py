"""CelebA in its official layout: img_align_celeba/, identity_CelebA.txt, list_eval_partition.txt (+ landmarks,
attributes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.file_datamodule import FileDataModule
from datamodules.images import read_image
from datamodules.records import ImageRecord
from metric.errors import ConfigError

EXPECTED_TREE = """<root>/
  img_align_celeba/              000001.jpg 000002.jpg ... (202,599 JPEGs)
  identity_CelebA.txt            '<file> <identity id>' per line, no header
  list_eval_partition.txt        '<file> <0|1|2>' (train, val, test)
  list_landmarks_align_celeba.txt  optional: count, header of 10 names, '<file> x y' x 5 points
  list_attr_celeba.txt           optional: count, header of 40 names, '<file> 1|-1 ...'
"""
PARTITIONS = {"0": "train", "1": "val", "2": "test"}
ALIGN_MODES = (None, "landmarks")


def read_pairs(path: Path) -> dict[str, str]:
    """'<file> <value>' lines -> {file: value}."""
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ConfigError(f"{path}, line {number}: expected '<file> <value>', got {line!r}.")
        out[fields[0]] = fields[1]
    return out


def read_table(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """CelebA's count + header + rows format -> (column names, {file: values})."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        raise ConfigError(f"{path}: expected a count line, a header line, then '<file> values...' rows.")
    header = lines[1].split()
    rows = {}
    for number, line in enumerate(lines[2:], 3):
        fields = line.split()
        if len(fields) != len(header) + 1:
            raise ConfigError(f"{path}, line {number}: expected a file name and {len(header)} values, got {line!r}.")
        rows[fields[0]] = fields[1:]
    return header, rows


class CelebADataModule(FileDataModule):
    """split=official uses list_eval_partition.txt (checked identity-disjoint); split=identity a seeded split."""

    dataset_name = "celeba"

    def __init__(self, align: str | None = None, attributes: list[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        if align not in ALIGN_MODES:
            raise ConfigError(f"datamodule.align={align!r} is not one of null, landmarks.")
        if align is not None and self.face.active:
            raise ConfigError(
                f"datamodule.align={align} aligns by CelebA's own landmarks, and {self.face.describe()} "
                "by detected ones: choose one (face=none with align=landmarks, or align=null)."
            )
        self.align = align
        self.attributes = list(attributes or [])

    def require(self, name: str) -> Path:
        path = self.root / name
        if not path.exists():
            raise ConfigError(
                f"CelebA: {path} is missing. Expected this layout under datamodule.root:\n{EXPECTED_TREE}"
            )
        return path

    def scan(self) -> list[ImageRecord]:
        images = self.require("img_align_celeba")
        identities = read_pairs(self.require("identity_CelebA.txt"))
        partitions = read_pairs(self.require("list_eval_partition.txt"))
        landmarks = {}
        if self.align == "landmarks":
            header, rows = read_table(self.require("list_landmarks_align_celeba.txt"))
            if len(header) != 10:
                raise ConfigError(f"{self.root / 'list_landmarks_align_celeba.txt'}: expected 10 coordinate names.")
            landmarks = {f: tuple(map(tuple, np.array(v, dtype=float).reshape(5, 2))) for f, v in rows.items()}
        attributes = self.read_attributes() if self.attributes else {}
        records = []
        for file, identity in identities.items():
            partition = PARTITIONS.get(partitions.get(file, ""))
            records.append(
                ImageRecord(
                    path=images / file,
                    identity=identity,
                    partition=partition,
                    factors=attributes.get(file, {}),
                    landmarks=landmarks.get(file),
                )
            )
        if not records:
            raise ConfigError(f"CelebA: {self.root / 'identity_CelebA.txt'} lists no image.")
        unpartitioned = [r.path.name for r in records if r.partition is None]
        if self.split_mode == "official" and unpartitioned:
            raise ConfigError(
                f"CelebA: {len(unpartitioned)} files of identity_CelebA.txt have no 0/1/2 line in "
                f"list_eval_partition.txt (first: {', '.join(unpartitioned[:3])}); split=official needs one for each."
            )
        return records

    def read_attributes(self) -> dict[str, dict[str, str]]:
        header, rows = read_table(self.require("list_attr_celeba.txt"))
        unknown = [a for a in self.attributes if a not in header]
        if unknown:
            raise ConfigError(
                f"datamodule.attributes: {unknown} not in list_attr_celeba.txt (it has {', '.join(header)})."
            )
        columns = [header.index(a) for a in self.attributes]
        return {f: {a: values[c] for a, c in zip(self.attributes, columns)} for f, values in rows.items()}

    def preprocess_settings(self) -> dict:
        return {**super().preprocess_settings(), "align": self.align}

    def decode(self, record: ImageRecord) -> np.ndarray:
        landmarks = np.array(record.landmarks) if self.align == "landmarks" and record.landmarks else None
        return read_image(record.path, self.image_channels, self.image_size, landmarks=landmarks)
