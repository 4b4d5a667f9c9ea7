"""datamodule=lfw on a fixture tree in LFW's official layout: people.txt folds, cv.folds=lfw, pairs.txt pairs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datamodules.folds import CrossValidation
from datamodules.sources.folder import FolderDataModule
from datamodules.sources.lfw import LFWDataModule
from metric.errors import ConfigError

PEOPLE = [[f"Person_{fold}_{k}" for k in range(3)] for fold in range(10)]  # 3 people per fold, 3 photos each


def lfw_tree(root, overlap: bool = False):
    rng = np.random.default_rng(0)
    images = root / "lfw-deepfunneled"
    for fold in PEOPLE:
        for name in fold:
            (images / name).mkdir(parents=True)
            for i in range(1, 4):
                pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(images / name / f"{name}_{i:04d}.jpg", quality=95)
    folds = [list(f) for f in PEOPLE]
    if overlap:
        folds[1][0] = folds[0][0]
    people = ["10"] + [line for fold in folds for line in [str(len(fold)), *(f"{n}\t3" for n in fold)]]
    (root / "people.txt").write_text("\n".join(people) + "\n")
    pairs = ["10\t2"]
    for fold in PEOPLE:
        pairs += [f"{fold[0]}\t1\t2", f"{fold[1]}\t1\t3", f"{fold[0]}\t1\t{fold[2]}\t2", f"{fold[1]}\t2\t{fold[2]}\t1"]
    (root / "pairs.txt").write_text("\n".join(pairs) + "\n")
    return root


def datamodule(root, **kwargs) -> LFWDataModule:
    return LFWDataModule(
        str(root), image_size=(16, 16), val_identities=4, batch_identities=2, batch_images_per_identity=2, **kwargs
    )


def names(split) -> set[str]:
    return {source.split("/")[-2] for source in split.sources}


def test_official_folds_test_one_fold_and_map_its_pairs(tmp_path):
    root = lfw_tree(tmp_path)
    for fold in CrossValidation(folds="lfw", fold=3).requested():
        dm = datamodule(root)
        dm.use_fold(fold)
        dm.setup("fit")
        assert names(dm.splits["test"]) == set(PEOPLE[3])
        assert not names(dm.splits["test"]) & (names(dm.splits["train"]) | names(dm.splits["val"]))
        assert len(names(dm.splits["val"])) == 4 and len(names(dm.splits["train"])) == 27 - 4
        first, second, genuine, dropped = dm.test_pairs()
        assert dropped == 0 and genuine.tolist() == [True, True, False, False]
        test = dm.splits["test"]
        assert test.sources[first[0]].endswith("Person_3_0_0001.jpg")
        assert test.sources[second[0]].endswith("Person_3_0_0002.jpg")
        assert test.sources[second[2]].endswith("Person_3_2_0002.jpg")


def test_without_cv_the_test_fold_is_test_fold(tmp_path):
    dm = datamodule(lfw_tree(tmp_path), test_fold=0)
    dm.setup("fit")
    assert names(dm.splits["test"]) == set(PEOPLE[0])
    assert len(dm.test_pairs()[0]) == 4


def test_folds_that_share_a_person_are_refused(tmp_path):
    dm = datamodule(lfw_tree(tmp_path, overlap=True))
    with pytest.raises(ConfigError, match="person-disjoint"):
        dm.setup("fit")


def test_official_folds_need_the_lfw_datamodule(tmp_path):
    lfw_tree(tmp_path)
    dm = FolderDataModule(
        str(tmp_path / "lfw-deepfunneled"), image_size=(16, 16), batch_identities=2, batch_images_per_identity=2
    )
    with pytest.raises(ConfigError, match="cv.folds=lfw .* datamodule=lfw"):  # refused before any image is read
        dm.use_fold(CrossValidation(folds="lfw").requested()[0])
    with pytest.raises(ConfigError, match="cv.folds='five'"):
        CrossValidation(folds="five")


def test_numbered_folds_on_lfw_have_no_official_pairs_and_too_many_val_people_is_one_message(tmp_path):
    root = lfw_tree(tmp_path)
    dm = datamodule(root)
    dm.use_fold(CrossValidation(folds=3, fold=0, val_identities=4).requested()[0])
    dm.setup("fit")
    assert dm.test_pairs() is None  # a shuffled fold is not an official one: no pairs.txt fold to score
    dm = datamodule(root)
    dm.use_fold(CrossValidation(folds="lfw", fold=0, val_identities=40).requested()[0])
    with pytest.raises(ConfigError, match="cv.val_identities=40: needs 2 to 25 of the 27 identities"):
        dm.setup("fit")
