"""LFW (Labeled Faces in the Wild) in its official layout: `datamodule=lfw`, with the View 2 folds of people.txt
(`cv.folds=lfw`: train on the people of 9 folds, test on the pairs.txt pairs of the 10th) and the pairs-file parser.

    <root>/lfw-deepfunneled/<Name>/<Name>_<NNNN>.jpg   (or lfw/, lfw-funneled/: datamodule.images=<folder>)
    <root>/people.txt    '<folds>', then per fold '<people>' and '<Name> <images>' lines (person-disjoint folds)
    <root>/pairs.txt     '<folds> <n>', then per fold n lines 'Name i j' (genuine), n lines 'Name1 i Name2 j'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.file_datamodule import FileDataModule
from datamodules.folds import LFW_FOLDS, CVFold, cut_around_test, fold_splits
from datamodules.images import IMAGE_SUFFIXES
from datamodules.records import ImageRecord
from datamodules.split import IdentitySplit, merge_splits
from metric.errors import ConfigError

EXPECTED_TREE = "<root>/\n  people.txt  pairs.txt\n  lfw-deepfunneled/\n    <Name>/  <Name>_0001.jpg ...\n"


@dataclass(frozen=True)
class PairList:
    """Pairs of image paths with their fold and label, in file order."""

    first: list[Path]
    second: list[Path]
    genuine: np.ndarray
    fold: np.ndarray


def find_image(root: Path, name: str, number: int) -> Path | None:
    stem = root / name / f"{name}_{number:04d}"
    for suffix in IMAGE_SUFFIXES:
        if stem.with_suffix(suffix).exists():
            return stem.with_suffix(suffix)
    return None


def read_pairs_file(path: Path, root: Path) -> PairList:
    """LFW pairs.txt: '<folds> <pairs per fold>', then 'name i j' (genuine) or 'name1 i name2 j' (impostor) lines;
    each fold is 2 x <pairs per fold> consecutive lines. Images are <root>/<name>/<name>_<i:04d>.<ext>."""
    if not path.is_file():
        raise ConfigError(f"pairs_file={str(path)!r}: no such file.")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    try:
        folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise ConfigError(
            f"{path}, line 1: expected '<folds> <pairs per fold>', got {' '.join(lines[0]) if lines else 'nothing'}."
        ) from None
    body = lines[1:]
    if len(body) != folds * 2 * per_fold:
        raise ConfigError(
            f"{path}: the header promises {folds} folds x 2 x {per_fold} pairs, the file has {len(body)}."
        )
    first, second, genuine, missing = [], [], [], []
    for number, fields in enumerate(body, 2):
        if len(fields) == 3:
            names, same = (fields[0], int(fields[1]), fields[0], int(fields[2])), True
        elif len(fields) == 4:
            names, same = (fields[0], int(fields[1]), fields[2], int(fields[3])), False
        else:
            raise ConfigError(
                f"{path}, line {number}: expected 'name i j' or 'name1 i name2 j', got {' '.join(fields)!r}."
            )
        a, b = find_image(root, names[0], names[1]), find_image(root, names[2], names[3])
        for found, (name, i) in ((a, names[:2]), (b, names[2:])):
            if found is None:
                missing.append(str(root / name / f"{name}_{i:04d}.<{'|'.join(s[1:] for s in IMAGE_SUFFIXES)}>"))
        first.append(a)
        second.append(b)
        genuine.append(same)
    if missing:
        raise ConfigError(
            f"{path} names {len(missing)} image(s) missing under root={str(root)!r}, e.g.:\n  "
            + "\n  ".join(missing[:5])
            + "\nCheck `root` (it must hold <name>/<name>_<i:04d>.<ext>)."
        )
    fold = np.arange(len(body)) // (2 * per_fold)
    return PairList(first, second, np.array(genuine), fold)


def read_people_file(path: Path) -> list[dict[str, int]]:
    """people.txt: '<folds>', then per fold '<count>' and that many '<Name> <images>' lines -> per fold {name:
    images}."""
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such file. datamodule=lfw reads the official View 2 people.txt beside the "
            f"images. Expected a tree like:\n{EXPECTED_TREE}"
        )
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    try:
        folds, row, out = int(lines[0][0]), 1, []
        for _ in range(folds):
            count = int(lines[row][0])
            people = {fields[0]: int(fields[1]) for fields in lines[row + 1 : row + 1 + count]}
            if len(people) != count:
                raise ValueError
            out.append(people)
            row += 1 + count
    except (IndexError, ValueError):
        raise ConfigError(
            f"{path} is not in the people.txt format ('<folds>', then per fold '<count>' and '<Name> <images>' lines)."
        ) from None
    seen: dict[str, int] = {}
    for index, people in enumerate(out):
        for name in people:
            if name in seen:
                raise ConfigError(
                    f"{path}: {name} is in folds {seen[name]} and {index}; the folds must be person-disjoint."
                )
            seen[name] = index
    return out


class LFWDataModule(FileDataModule):
    """Every photo of people.txt's people, each labelled with its View 2 fold. Without cross-validation, test is
    fold `test_fold`, validation `val_identities` people drawn (seeded) from the other folds, train the rest;
    `cv.folds=lfw` runs the ten official folds (test_pairs(): the test fold's pairs of pairs.txt)."""

    dataset_name = "lfw"
    identities_by_folder = True

    def __init__(
        self, root: str, images: str = "lfw-deepfunneled", test_fold: int = 9, val_identities: int = 200, **kwargs
    ):
        kwargs.setdefault("split", "official")
        super().__init__(root, **kwargs)
        if not isinstance(test_fold, int) or not 0 <= test_fold < LFW_FOLDS:
            raise ConfigError(f"datamodule.test_fold={test_fold!r} must be one of LFW's folds, 0..{LFW_FOLDS - 1}.")
        self.image_root = self.root / images
        self.test_fold, self.val_identities = test_fold, val_identities
        self.fold_of: dict[str, int] = {}

    def scan(self) -> list[ImageRecord]:
        if not self.image_root.is_dir():
            raise ConfigError(
                f"datamodule.root={str(self.root)!r} has no image folder {self.image_root.name}/ "
                f"(set datamodule.images). Expected a tree like:\n{EXPECTED_TREE}"
            )
        folds = read_people_file(self.root / "people.txt")
        self.fold_of = {name: index for index, people in enumerate(folds) for name in people}
        rest = sorted((n for n, f in self.fold_of.items() if f != self.test_fold))
        val = set(
            np.random.default_rng(self.seed)
            .choice(rest, min(self.val_identities, len(rest) - 2), replace=False)
            .tolist()
        )
        records, missing = [], []
        for name, fold in self.fold_of.items():
            partition = "test" if fold == self.test_fold else "val" if name in val else "train"
            for number in range(1, folds[fold][name] + 1):
                path = find_image(self.image_root, name, number)
                if path is None:
                    missing.append(f"{name}_{number:04d}")
                    continue
                records.append(ImageRecord(path=path, identity=name, partition=partition, factors={"fold": fold}))
        if missing:
            print(f"note: people.txt lists {len(missing)} photo(s) missing under {self.image_root}, e.g. {missing[0]}")
        return records

    def cut_fold(self, splits: dict[str, IdentitySplit], fold: CVFold) -> dict[str, IdentitySplit]:
        """cv.folds=lfw: test = the people of View 2 fold `fold`, validation = cv.val_identities (or
        datamodule.val_identities) people drawn from the other folds, train = the rest."""
        if not fold.official:
            return fold_splits(splits, fold)
        pooled = merge_splits(splits)
        folds = np.array([f["fold"] for f in pooled.factors])
        test_ids = np.unique(pooled.labels[folds == fold.fold])
        rest = np.unique(pooled.labels[folds != fold.fold])
        n_val = self.val_identities if fold.val_identities is None else fold.val_identities
        return cut_around_test(pooled, test_ids, rest, n_val, fold)

    def current_test_fold(self) -> int:
        return self.cv_fold.fold if self.cv_fold is not None and self.cv_fold.official else self.test_fold

    def test_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
        """The test fold's pairs of pairs.txt as rows of the test split: (first, second, genuine, pairs dropped
        because a photo is not in the split, e.g. skipped for having no face: use face.on_miss=whole). None under
        a numbered cross-validation (cv.folds=k), whose test people are not an official fold."""
        if self.cv_fold is not None and not self.cv_fold.official:
            return None
        pairs = read_pairs_file(self.root / "pairs.txt", self.image_root)
        row = {source: i for i, source in enumerate(self.splits["test"].sources)}
        keep = np.flatnonzero(pairs.fold == self.current_test_fold())
        first = [row.get(str(pairs.first[i]), -1) for i in keep]
        second = [row.get(str(pairs.second[i]), -1) for i in keep]
        ok = (np.array(first) >= 0) & (np.array(second) >= 0)
        return (np.array(first)[ok], np.array(second)[ok], pairs.genuine[keep][ok], int((~ok).sum()))
