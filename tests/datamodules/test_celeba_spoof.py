"""CelebA-Spoof on fixture trees in the official layout: box scale, subject-disjoint splits, labels over folders,
condition filters, subsets, missing images and box files, the cache and the bad-file report, bad layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datamodules.liveness import SPOOF_TYPES, Conditions, liveness_targets, parse_codes
from datamodules.sources.celeba_spoof import CelebASpoofDataModule, crop_box, read_box
from metric.errors import ConfigError
from tests.datamodules.spoof_fixtures import FACE_COLOUR, build_celeba_spoof


@pytest.fixture
def spoof_root(tmp_path):
    root = tmp_path / "CelebA_Spoof"
    build_celeba_spoof(root)
    return root


def datamodule(root, tmp_path, **kwargs) -> CelebASpoofDataModule:
    settings = {
        "image_size": (32, 32),
        "val_subjects": 2,
        "cache_dir": str(tmp_path / "cache"),
        "bad_files_report": str(tmp_path / "bad.txt"),
        **kwargs,
    }
    return CelebASpoofDataModule(root=str(root), **settings)


def subjects(split) -> set[str]:
    return {source.split("/")[-3] for source in split.sources}


def test_box_coordinates_are_at_the_224_scale_of_each_image(spoof_root, tmp_path):
    dm = datamodule(spoof_root, tmp_path, image_size=(40, 40))
    dm.setup("fit")
    for split in dm.splits.values():
        live = liveness_targets(split)[:, 0] == 0
        crops = split.images[live].reshape(live.sum(), -1, 3).astype(float)
        # every pixel of the crop is the face box, on the small and the doubled images alike (JPEG wobble aside)
        assert np.abs(crops.mean(1) - FACE_COLOUR).max() < 8
        assert (np.abs(crops - FACE_COLOUR).max(2) > 60).mean() < 0.01


def test_read_box_and_crop_box_follow_the_datasets_reader(tmp_path):
    image = tmp_path / "1.jpg"
    image.with_name("1_BB.txt").write_text("56 40 112 140 0.98\n")
    assert read_box(image) == (56, 40, 168, 180)
    assert crop_box(448, 224, read_box(image)) == (112, 40, 336, 180)  # x scaled by 448/224, y by 224/224
    assert crop_box(100, 100, (-10, -5, 300, 300)) == (0, 0, 100, 100)  # clipped, as the reader clips
    image.with_name("1_BB.txt").write_text("not a box")
    assert read_box(image) is None


def test_splits_are_subject_disjoint_with_validation_carved_from_train(spoof_root, tmp_path):
    dm = datamodule(spoof_root, tmp_path)
    dm.setup("fit")
    train, val, test = (subjects(dm.splits[s]) for s in ("train", "val", "test"))
    assert len(val) == 2 and len(train) == 6 and len(test) == 4
    assert not (train & val) and not (train & test) and not (val & test)
    assert all("/Data/test/" in s for s in dm.splits["test"].sources)
    assert all("/Data/train/" in s for s in dm.splits["val"].sources)
    assert dm.notes["presentations_test"] == {"live": 8, "photo": 4, "a4": 4, "pc": 4, "phone": 4}


def test_the_labels_json_wins_over_the_folder_and_disagreements_are_counted(spoof_root, tmp_path, capsys):
    file = spoof_root / "metas/intra_test/train_label.json"
    labels = json.loads(file.read_text())
    live_key = next(k for k in labels if "/live/" in k)
    labels[live_key][40], labels[live_key][41], labels[live_key][42], labels[live_key][43] = 3, 1, 1, 1
    file.write_text(json.dumps(labels))
    dm = datamodule(spoof_root, tmp_path)
    dm.setup("fit")
    assert dm.notes["label_folder_disagreements"] == 1
    assert "contradict" in capsys.readouterr().out
    split = next(s for s in dm.splits.values() if str(spoof_root / live_key) in s.sources)
    row = split.sources.index(str(spoof_root / live_key))
    assert split.factors[row]["spoof"] == 1 and split.factors[row]["spoof_type"] == 3


def test_condition_filters_make_a_cross_attack_protocol(spoof_root, tmp_path):
    dm = datamodule(
        spoof_root,
        tmp_path,
        train_conditions={"spoof_types": ["print"]},
        test_conditions={"spoof_types": ["replay"], "illumination": ["back"]},
    )
    dm.setup("fit")
    for name in ("train", "val"):
        types = set(liveness_targets(dm.splits[name])[:, 1].tolist())
        assert types == {0, 1, 3}  # live, photo, A4
    test = liveness_targets(dm.splits["test"])
    assert set(test[:, 1].tolist()) == {0, 7}  # phone is replay, but lit 'dark', not 'back'
    assert dm.notes["conditions_test"] == "spoof_types=[7, 8, 9], illumination=[3]"


def test_condition_values_are_checked_by_name_and_code():
    assert parse_codes(["print", "pc", 10], SPOOF_TYPES, "k") == {1, 2, 3, 7, 10}
    with pytest.raises(ConfigError, match="'paper'.*photo"):
        parse_codes(["paper"], SPOOF_TYPES, "datamodule.train_conditions.spoof_types")
    with pytest.raises(ConfigError, match="live presentations are always kept"):
        parse_codes(["live"], SPOOF_TYPES, "k")
    with pytest.raises(ConfigError, match="unknown key"):
        Conditions.parse({"lighting": ["dark"]}, "datamodule.test_conditions")
    dm_filters = Conditions.parse({"spoof_types": ["replay"]}, "k")
    assert dm_filters.keeps({"spoof": 0, "spoof_type": 0, "illumination": 0, "environment": 0})
    assert not dm_filters.keeps({"spoof": 1, "spoof_type": 1, "illumination": 1, "environment": 1})


def test_a_filter_that_empties_a_class_is_refused(spoof_root, tmp_path):
    dm = datamodule(spoof_root, tmp_path, test_conditions={"spoof_types": ["3d_mask"]})
    with pytest.raises(ConfigError, match="test split holds no attack presentation.*test_conditions"):
        dm.setup("test")


def test_max_subjects_is_a_seeded_stable_subset(spoof_root, tmp_path):
    small = datamodule(spoof_root, tmp_path, max_subjects=6, val_subjects=1)
    small.setup("fit")
    larger = datamodule(spoof_root, tmp_path, max_subjects=9, val_subjects=1)
    larger.setup("fit")
    chosen = set().union(*(subjects(s) for s in small.splits.values()))
    assert len(chosen) == 6
    assert chosen <= set().union(*(subjects(s) for s in larger.splits.values()))


def test_missing_images_and_box_files_are_counted_not_fatal(spoof_root, tmp_path, capsys):
    images = sorted((spoof_root / "Data/train").rglob("*.jpg"))
    images[0].unlink()
    images[1].with_name(images[1].stem + "_BB.txt").unlink()
    images[2].with_name(images[2].stem + "_BB.txt").write_text("garbage\n")
    dm = datamodule(spoof_root, tmp_path)
    dm.setup("fit")
    assert dm.notes["missing_images"] == 1 and dm.notes["bad_files"] == 1
    assert dm.notes["unreadable_box_files"] == 2
    out = capsys.readouterr().out
    assert "2 box file(s) missing or unreadable" in out and "used whole" in out
    assert str(images[0]) in (tmp_path / "bad.txt").read_text()


def test_all_images_missing_is_one_clear_error(tmp_path):
    root = tmp_path / "spoof"
    build_celeba_spoof(root)
    for image in (root / "Data").rglob("*.*g"):
        image.unlink()
    with pytest.raises(ConfigError, match="none of the .* images the labels list exists.*Data/ and metas/"):
        datamodule(root, tmp_path).setup("fit")


def test_the_cache_gives_the_same_splits(spoof_root, tmp_path):
    first = datamodule(spoof_root, tmp_path)
    first.setup("fit")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    second = datamodule(spoof_root, tmp_path)
    second.decode = None  # decoding again would fail: the cache must serve it
    second.setup("fit")
    for name in first.splits:
        assert np.array_equal(first.splits[name].images, second.splits[name].images)
        assert first.splits[name].factors == second.splits[name].factors


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "metas/intra_test/test_label.json").unlink(), "test_label.json is missing.*Expected"),
        (
            lambda root: (root / "metas/intra_test/train_label.json").write_text("{"),
            "train_label.json is not valid JSON",
        ),
        (
            lambda root: (root / "metas/intra_test/train_label.json").write_text('{"Data/train/1/live/1.jpg": [1, 2]}'),
            "must be a list of 44 integers",
        ),
        (
            lambda root: (root / "metas/intra_test/train_label.json").write_text(
                '{"Data/1.jpg": ' + str([0] * 44) + "}"
            ),
            "is not 'Data/<split>/<subject>/<live|spoof>/<image>'",
        ),
    ],
)
def test_a_root_not_in_the_layout_gets_one_clear_message(spoof_root, tmp_path, damage, message):
    damage(spoof_root)
    with pytest.raises(ConfigError, match=message):
        datamodule(spoof_root, tmp_path).setup("fit")


def test_a_subject_in_train_and_test_is_refused(spoof_root, tmp_path):
    train = json.loads((spoof_root / "metas/intra_test/train_label.json").read_text())
    test_file = spoof_root / "metas/intra_test/test_label.json"
    test = json.loads(test_file.read_text())
    key = next(iter(train))
    test[key.replace("Data/train", "Data/test")] = train[key]
    test_file.write_text(json.dumps(test))
    with pytest.raises(ConfigError, match="appear in both"):
        datamodule(spoof_root, tmp_path).setup("fit")
